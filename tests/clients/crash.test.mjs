// A crash loses nothing a client was told was queued: 10 prompts are queued,
// the server is killed (SIGKILL) while the third runs, and started again on
// the same user folder; every prompt then succeeds, each exactly once.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startServer, stopServer, sleep } from "./serve.mjs";

// About a second of work on two cores: a large batch blurred, then saved small.
function prompt(i) {
  return {
    1: { class_type: "EmptyImage", inputs: { width: 1024, height: 1024, batch_size: 6, color: i * 4099 } },
    2: { class_type: "GaussianBlur", inputs: { image: ["1", 0], sigma: 12.0 } },
    3: { class_type: "Resize", inputs: { image: ["2", 0], width: 32, height: 32 } },
    4: { class_type: "SaveImage", inputs: { images: ["3", 0], filename_prefix: `crash/p${i}` } },
  };
}

async function json(url, body) {
  const response = await fetch(url, body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  });
  assert.equal(response.status, 200, await response.clone().text());
  return response.json();
}

test("kill -9 during the third of 10 prompts; after a restart all 10 succeed once", async () => {
  const work = mkdtempSync(join(tmpdir(), "cozy-crash-"));
  let server = await startServer(work);
  try {
    const ids = [];
    for (let i = 0; i < 10; i++) ids.push((await json(`${server.url}/prompt`, { prompt: prompt(i) })).prompt_id);
    // Wait until the third is the one running, then kill the process.
    let killed = false;
    for (let waited = 0; waited < 120000 && !killed; waited += 10) {
      const queue = await json(`${server.url}/queue`);
      if (queue.queue_running.length && queue.queue_running[0][1] === ids[2]) {
        await stopServer(server.child, "SIGKILL");
        killed = true;
      } else {
        await sleep(10);
      }
    }
    assert.ok(killed, "the third prompt never ran");

    server = await startServer(work);
    let history = {};
    for (let waited = 0; waited < 300000 && Object.keys(history).length < 10; waited += 100) {
      history = await json(`${server.url}/history`);
      if (Object.keys(history).length < 10) await sleep(100);
    }
    assert.deepEqual(Object.keys(history).sort(), [...ids].sort(), "each prompt in the history exactly once");
    for (const id of ids) {
      assert.equal(history[id].status.status_str, "success", id);
      const images = history[id].outputs["4"].images;
      assert.equal(images.length, 6);
      for (const image of images) assert.ok(existsSync(join(work, "output", image.subfolder, image.filename)));
    }
    assert.equal((await json(`${server.url}/prompt`)).exec_info.queue_remaining, 0);
  } finally {
    await stopServer(server.child);
    rmSync(work, { recursive: true, force: true });
  }
});

test("SIGTERM stops the server cleanly: the running prompt is interrupted and stays queued", async () => {
  const work = mkdtempSync(join(tmpdir(), "cozy-term-"));
  let server = await startServer(work);
  try {
    const id = (await json(`${server.url}/prompt`, { prompt: prompt(100) })).prompt_id;
    for (let waited = 0; waited < 60000; waited += 10) {
      if ((await json(`${server.url}/queue`)).queue_running.length) break;
      await sleep(10);
    }
    const exited = new Promise((r) => server.child.once("exit", (code, signal) => r({ code, signal })));
    const asked = performance.now();
    server.child.kill("SIGTERM");
    const { code } = await exited;
    assert.equal(code, 0, "a clean exit");
    assert.ok(performance.now() - asked < 10000, "promptly");
    server = await startServer(work);
    let history = {};
    for (let waited = 0; waited < 60000 && !history[id]; waited += 50) {
      history = await json(`${server.url}/history`);
      if (!history[id]) await sleep(50);
    }
    assert.equal(history[id].status.status_str, "success", "it ran again after the restart, once");
    assert.equal(Object.keys(history).length, 1);
  } finally {
    await stopServer(server.child);
    rmSync(work, { recursive: true, force: true });
  }
});
