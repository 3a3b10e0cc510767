// Starts `cozy serve` on a free loopback port for a test or a benchmark,
// and stops it: SIGTERM (a clean stop) or SIGKILL (a crash).
import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { readFileSync } from "node:fs";
import { join, dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const cozy = process.env.COZY_BINARY ?? join(root, "build", "cozy");

// {child, host, url}; `work` holds the folders (input, output, user).
export function startServer(work, extra = []) {
  return new Promise((resolveStart, reject) => {
    const child = spawn(cozy, ["serve", "--port", "0", "--input-dir", join(work, "input"),
      "--output-dir", join(work, "output"), "--models-dir", join(root, "models"),
      "--user-dir", join(work, "user"), ...extra], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    const timer = setTimeout(() => reject(new Error(`cozy serve did not start: ${err}`)), 60000);
    child.stdout.on("data", (chunk) => {
      out += chunk;
      const match = out.match(/listening on http:\/\/([0-9.]+:[0-9]+)/);
      if (match) {
        clearTimeout(timer);
        resolveStart({ child, host: match[1], url: `http://${match[1]}` });
      }
    });
    child.stderr.on("data", (chunk) => { err += chunk; });
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`cozy serve exited (${code ?? signal}): ${err}`));
    });
  });
}

export async function stopServer(child, signal = "SIGTERM") {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once("exit", r));
  child.kill(signal);
  await exited;
}

// The resident set of a process, in bytes.
export function residentBytes(pid) {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(status.match(/VmRSS:\s+(\d+) kB/)[1]) * 1024;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// A free loopback port (for a program that cannot pick its own and tell it).
export function freePort() {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolvePort(port));
    });
  });
}

// Waits until `pattern` appears in what `child` writes to stderr (or stdout).
function waitFor(child, pattern, what, timeoutMs = 60000) {
  return new Promise((resolveWait, reject) => {
    let seen = "";
    const timer = setTimeout(() => reject(new Error(`${what} did not start: ${seen}`)), timeoutMs);
    const look = (chunk) => {
      seen += chunk;
      if (pattern.test(seen)) {
        clearTimeout(timer);
        resolveWait();
      }
    };
    child.stdout?.on("data", look);
    child.stderr?.on("data", look);
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited (${code ?? signal}): ${seen}`));
    });
  });
}

// Debian's nats-server with JetStream, its store in `dir`, on `port`
// (the same port and store again after a restart). {child, url, port}.
export async function startNats(dir, port, cluster = []) {
  port ??= await freePort();
  const child = spawn("nats-server", ["-js", "-a", "127.0.0.1", "-p", String(port), "-sd", dir, ...cluster],
    { stdio: ["ignore", "pipe", "pipe"] });
  let log = "";
  child.stderr.on("data", (chunk) => { log += chunk; });
  await waitFor(child, /Server is ready/, "nats-server");
  return { child, port, url: `nats://127.0.0.1:${port}`, log: () => log };
}

// Three nats-servers in one JetStream cluster on loopback, their stores
// under `dir`; resolves once they have elected a leader. [{child, url, port}].
export async function startNatsCluster(dir) {
  const ports = [await freePort(), await freePort(), await freePort()];
  const routes = [await freePort(), await freePort(), await freePort()];
  const nodes = await Promise.all(ports.map((port, i) => startNats(join(dir, `n${i}`), port, [
    "-n", `cozy-n${i}`, "--cluster_name", "cozy", "--cluster", `nats://127.0.0.1:${routes[i]}`,
    "--routes", routes.filter((_, j) => j !== i).map((r) => `nats://127.0.0.1:${r}`).join(",")])));
  for (let waited = 0; !nodes.some((n) => /JetStream cluster new metadata leader/.test(n.log())); waited += 50) {
    if (waited > 60000) throw new Error(`no JetStream leader: ${nodes.map((n) => n.log()).join("\n")}`);
    await sleep(50);
  }
  return nodes;
}

// `cozy worker` on the queue at `url`, writing into work/<outputs>; `log`
// collects what it says. {child, name, log()}.
export async function startWorker(work, url, name, { outputs = "output", extra = [], ready = /taking prompts from/ } = {}) {
  const child = spawn(cozy, ["worker", "--queue", url, "--name", name, "--threads", "1", "--jobs", "1",
    "--input-dir", join(work, "input"), "--output-dir", join(work, outputs), "--models-dir", join(root, "models"),
    ...extra], { stdio: ["ignore", "pipe", "pipe"] });
  let log = "";
  child.stderr.on("data", (chunk) => { log += chunk; });
  await waitFor(child, ready, `cozy worker ${name}`);
  return { child, name, log: () => log };
}
