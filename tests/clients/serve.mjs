// Starts `cozy serve` on a free loopback port for a test or a benchmark,
// and stops it: SIGTERM (a clean stop) or SIGKILL (a crash).
import { spawn } from "node:child_process";
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
