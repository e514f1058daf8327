// Verifies webhook messages with the Standard Webhooks library (npm `standardwebhooks`),
// for tests/api/webhooks.rs: reads {"secret", "messages": [{"headers", "body"}]} on stdin,
// prints each message's verified payload as a JSON line, exits 1 at the first that fails.
import { Webhook } from "standardwebhooks";

let input = "";
for await (const chunk of process.stdin) input += chunk;
const { secret, messages } = JSON.parse(input);
// The library takes the secret without its `whsec_` prefix.
const webhook = new Webhook(secret.replace(/^whsec_/, ""));
for (const { headers, body } of messages) {
  try {
    console.log(JSON.stringify(webhook.verify(body, headers)));
  } catch (e) {
    console.error(`not verified: ${e.message}: ${headers["webhook-id"]}`);
    process.exit(1);
  }
}
