// Altair's live operations page. It loads a snapshot over REST, then follows the
// WebSocket; on a drop it says so, reconnects with backoff and resumes with `since` and
// `eventsSince`, so nothing is missed or shown twice. Events are applied as they come and
// drawn once per animation frame, so a hundred pours a second cost one layout a frame.
// Text is only ever set with textContent: names come from users.

// The modules, top to bottom: connection (REST and the socket), draw (the page, once a
// frame), variance and history (the Variance and History views, over REST), state (what
// the server said), words (numbers for people).

import { start } from "./connection.js";
import { $, history, variance, wall } from "./draw.js";

if (history) {
  const link = $("history-link");
  link.textContent = "Live";
}
if (variance) {
  const link = $("variance-link");
  link.textContent = "Live";
}
if (wall) {
  document.body.classList.add("wall");
  const link = $("view-link");
  link.href = "/";
  link.textContent = "Full view";
}
start();
