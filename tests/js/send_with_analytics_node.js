// Sends a store's calls to Parcours with Segment's Node.js SDK, unchanged, then prints one JSON line:
// the status of every HTTP answer and every error the SDK reported.
// Usage: node send_with_analytics_node.js HOST WRITE_KEY   (run by tests/test_segment_node_client.py)
"use strict";
const { Analytics } = require("@segment/analytics-node");

async function main() {
  const [host, writeKey] = process.argv.slice(2);
  const analytics = new Analytics({ writeKey, host, maxRetries: 0, flushAt: 3, flushInterval: 100 });
  const answers = [];
  const errors = [];
  analytics.on("http_response", (response) => answers.push(response.status));
  analytics.on("error", (error) => errors.push(String(error.reason || error.code)));

  analytics.identify({
    anonymousId: "till-12-session-4410",
    traits: { loyalty_card: "FID 0042 9913", email: "Ines.Roux@Example.fr", firstName: "Inès" },
    timestamp: new Date("2026-12-05T15:02:00Z"),
  });
  analytics.track({
    anonymousId: "till-12-session-4410",
    event: "Order Completed",
    properties: { order_id: "T-7781", total: 89.9, currency: "EUR" },
    context: { traits: { loyalty_card: "FID 0042 9913" } },
    timestamp: new Date("2026-12-05T15:04:30Z"),
  });
  analytics.track({
    userId: "cust-3031",
    event: "Call Logged",
    properties: { direction: "inbound" },
    context: { channel: "phone", externalIds: [{ id: "ines.roux@example.fr", type: "email", collection: "users" }] },
    timestamp: new Date("2026-12-05T16:10:00Z"),
  });
  await analytics.closeAndFlush({ timeout: 10000 });
  process.stdout.write(JSON.stringify({ answers, errors }) + "\n");
}

main().catch((error) => {
  process.stderr.write(String(error && error.stack ? error.stack : error) + "\n");
  process.exit(1);
});
