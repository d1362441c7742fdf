// Round trips through the MCP TypeScript SDK's client (@modelcontextprotocol/client, the SDK family Claude Code
// is built on), for the benchmarks that compare tools side by side. It validates structured answers against the
// tools' output schemas (ajv, compiled once per schema).
//
// Usage: node bench/ts_client.mjs NODE_MODULES SPEC_JSON
//   SPEC_JSON: {"command", "args", "cwd", "warmup", "rounds", "calls": [[label, tool, arguments], ...]}
// Every round calls each entry once, in an order that alternates between rounds. Prints one JSON object on
// stdout: {"times": {label: [ms, ...]}, "answers": {label: structuredContent of the last call}, "errors": n}.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [modules, specPath] = process.argv.slice(2);
const spec = JSON.parse(readFileSync(specPath, "utf8"));
const load = (sub) => import(pathToFileURL(join(modules, "@modelcontextprotocol/client/dist", sub)).href);
const { Client } = await load("index.mjs");
const { StdioClientTransport } = await load("stdio.mjs");

const transport = new StdioClientTransport({
  command: spec.command,
  args: spec.args,
  cwd: spec.cwd,
  env: { ...process.env },
  stderr: "inherit",
});
const client = new Client({ name: "overnight-bench", version: "0" });
await client.connect(transport);
await client.listTools(); // the output schemas the client validates against

const times = Object.fromEntries(spec.calls.map(([label]) => [label, []]));
const answers = {};
let errors = 0;
const once = async ([label, tool, args], keep) => {
  const started = performance.now();
  const result = await client.callTool({ name: tool, arguments: args });
  const took = performance.now() - started;
  if (result.isError) errors += 1;
  if (keep) {
    times[label].push(took);
    answers[label] = result.structuredContent ?? null;
  }
};
for (let round = 0; round < spec.warmup + spec.rounds; round += 1) {
  const order = round % 2 === 0 ? spec.calls : [...spec.calls].reverse();
  for (const call of order) await once(call, round >= spec.warmup);
}
await client.close();
process.stdout.write(JSON.stringify({ times, answers, errors }));
