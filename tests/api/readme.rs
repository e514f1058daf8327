//! The README's examples, pasted into a shell against a fresh server: each answer is what
//! the README says it is (`...` stands for what differs from run to run).

use std::process::Command;

use crate::helpers::spawn_with;

/// The first `sh` block after the heading `heading`.
fn block(heading: &str) -> &'static str {
    fenced(heading, "sh")
}

/// The first block fenced as `lang` after `heading`.
fn fenced(heading: &str, lang: &str) -> &'static str {
    let readme = include_str!("../../README.md");
    let at = readme
        .find(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("the README has {heading:?}"));
    let fence = format!("```{lang}\n");
    let start = at + readme[at..].find(&fence).expect("a block") + fence.len();
    let end = start + readme[start..].find("```").expect("the block ends");
    &readme[start..end]
}

/// The block's commands, each with the answer the README shows for it, if any.
fn steps(block: &str) -> Vec<(String, Option<String>)> {
    let mut steps: Vec<(String, Option<String>)> = Vec::new();
    let mut lines = block.lines().peekable();
    while let Some(line) = lines.next() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let mut command = line.to_owned();
        while command.ends_with('\\') {
            command.pop();
            command.push_str(lines.next().expect("a continued line").trim_start());
        }
        let mut answer: Option<String> = None;
        while let Some(next) = lines.peek() {
            let shown = match (&answer, next.strip_prefix("# ")) {
                (None, Some(text)) if text.starts_with(['{', '(']) || csv_row(text) => {
                    text.to_owned()
                }
                (Some(_), Some(text)) if text.starts_with(' ') => text.trim_start().to_owned(),
                // CSV, a line a row; NDJSON, a line an object.
                (Some(shown), Some(text))
                    if (csv_row(shown) && csv_row(text))
                        || (shown.starts_with('{') && text.starts_with('{')) =>
                {
                    format!("\n{text}")
                }
                _ => break,
            };
            answer.get_or_insert_with(String::new).push_str(&shown);
            lines.next();
        }
        steps.push((command, answer));
    }
    steps
}

/// Whether a comment shows a row of CSV: a first cell, without spaces, then a comma.
fn csv_row(text: &str) -> bool {
    let first = text.split(',').next().unwrap_or(text);
    text.contains(',') && !first.contains(' ') && !first.starts_with(['{', '('])
}

/// Whether `got` is what the README shows, `...` standing for anything (lines too).
fn matches(shown: &str, got: &str) -> bool {
    let got = got.replace("\r\n", "\n");
    let pattern = shown
        .split("...")
        .map(regex::escape)
        .collect::<Vec<_>>()
        .join(".*");
    regex::Regex::new(&format!("(?s)^{pattern}$"))
        .unwrap()
        .is_match(&got)
}

async fn pasted(heading: &str) {
    pasted_with(heading, &[], &[]).await;
}

/// [`pasted`], against a server started with `flags`, each `(from, to)` of `replace`
/// replaced in the commands (a port, say).
async fn pasted_with(heading: &str, flags: &[&str], replace: &[(&str, &str)]) {
    if Command::new("curl").arg("--version").output().is_err() {
        static SAID: std::sync::Once = std::sync::Once::new();
        let what = "the README's examples";
        crate::helpers::skip_unless_required("ALTAIR_TEST_CURL", what, "no curl", &SAID);
        return;
    }
    let app = spawn_with(flags).await;
    if flags.contains(&"--mqtt-url") {
        crate::mqtt::connected(&app, true).await;
    }
    let addr = app.addr.to_string();
    let steps = steps(block(heading));
    assert!(
        steps.iter().any(|(_, a)| a.is_some()),
        "{heading} shows answers"
    );
    for (command, shown) in steps {
        let mut command = command.replace("localhost:8338", &addr);
        for (from, to) in replace {
            command = command.replace(from, to);
        }
        let output = tokio::task::spawn_blocking(move || {
            let output = Command::new("sh").args(["-c", &command]).output().unwrap();
            (command, output)
        })
        .await
        .unwrap();
        let (command, output) = output;
        let got = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        if let Some(shown) = shown {
            assert!(
                matches(&shown, &got),
                "{heading}: {command}\n   shows: {shown}\n   gives: {got}"
            );
        }
    }
}

#[tokio::test]
async fn the_try_it_block_gives_what_it_shows() {
    pasted("## Try it").await;
}

#[tokio::test]
async fn the_several_bars_block_gives_what_it_shows() {
    pasted("## Several bars").await;
}

#[tokio::test]
async fn the_venues_block_gives_what_it_shows() {
    pasted("### Venues").await;
}

#[tokio::test]
async fn the_alerts_block_gives_what_it_shows() {
    pasted("### Alerts").await;
}

#[tokio::test]
async fn the_kegs_block_gives_what_it_shows() {
    pasted("### Kegs and taps").await;
}

#[tokio::test]
async fn the_webhooks_block_gives_what_it_shows() {
    pasted("### Webhooks").await;
}

#[tokio::test]
async fn the_csv_block_gives_what_it_shows() {
    pasted("### CSV and the export").await;
}

#[tokio::test]
async fn the_poured_versus_sold_block_gives_what_it_shows() {
    pasted("## Poured versus sold").await;
}

#[tokio::test]
async fn the_history_block_gives_what_it_shows() {
    pasted("### `GET /api/history`").await;
}

#[tokio::test]
async fn the_mqtt_block_gives_what_it_shows() {
    let Some(broker) = crate::mqtt::Broker::start() else {
        return;
    };
    let url = broker.url();
    let port = format!("-p {}", broker.port);
    if Command::new("mosquitto_pub")
        .arg("--help")
        .output()
        .is_err()
    {
        static SAID: std::sync::Once = std::sync::Once::new();
        let why = "no mosquitto_pub: apt-get install mosquitto-clients";
        crate::helpers::skip_unless_required(
            "ALTAIR_TEST_MQTT",
            "the README's MQTT block",
            why,
            &SAID,
        );
        return;
    }
    let flags = ["--mqtt-url", url.as_str()];
    pasted_with("## MQTT", &flags, &[("-p 1883", port.as_str())]).await;
}

#[tokio::test]
async fn the_temperatures_block_gives_what_it_shows() {
    pasted("## Temperatures").await;
}

#[tokio::test]
async fn the_keg_cop_block_gives_what_it_shows() {
    pasted("### Keg Cop").await;
}

/// The meters file the README shows, as a server reads it, and its block's pour.
#[tokio::test]
async fn the_meters_block_gives_what_it_shows() {
    let Some(broker) = crate::mqtt::Broker::start() else {
        return;
    };
    if Command::new("mosquitto_pub")
        .arg("--help")
        .output()
        .is_err()
    {
        return; // the_mqtt_block_gives_what_it_shows says why
    }
    let heading = "### Meters that count";
    let file = crate::helpers::tempdir("readme-meters").join("meters.toml");
    std::fs::write(&file, fenced(heading, "toml")).unwrap();
    let (url, port) = (broker.url(), format!("-p {}", broker.port));
    let flags = [
        "--mqtt-url",
        url.as_str(),
        "--mqtt-meters",
        file.to_str().unwrap(),
    ];
    pasted_with(heading, &flags, &[("-p 1883", port.as_str())]).await;
}
