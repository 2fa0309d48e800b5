// Peer job queues draining the same work as Snorq's send benchmark (benches/send.sh): a backlog
// of jobs, each one WhatsApp send (POST /v21.0/{phone}/messages, JSON body) to the platform
// simulator, 32 at a time, unpaced. Prints "<queue>: N jobs in S s = R jobs/s".
//
//   node peers.mjs graphile-worker <database url> <platform url> <jobs> <concurrency>
//   node peers.mjs pg-boss         <database url> <platform url> <jobs> <concurrency>
//
// graphile-worker runs `concurrency` jobs at once (its own setting). pg-boss fetches batches of
// `concurrency` jobs (batchSize) and sends each batch's jobs at once, fetching again at once while
// batches come back full (burstWhenBatchFull): its fastest documented mode.
// The time runs from the first job started to the last one finished; enqueueing is not timed.
import { Logger, run, makeWorkerUtils } from "graphile-worker";
import { PgBoss } from "pg-boss";

const [queue, databaseUrl, platformUrl, jobsArg, concurrencyArg] = process.argv.slice(2);
const jobs = Number(jobsArg ?? 5000);
const concurrency = Number(concurrencyArg ?? 32);
const phone = "100000000000001";

function payload(i) {
  return {
    messaging_product: "whatsapp",
    to: `55119${String(i % 5000).padStart(5, "0")}`,
    type: "text",
    text: { body: `reply ${i}` },
    biz_opaque_callback_data: `bench:${i}`,
  };
}

async function send(body) {
  const response = await fetch(`${platformUrl}/v21.0/${phone}/messages`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: "Bearer bench" },
    body: JSON.stringify(body),
  });
  if (!response.ok) throw new Error(`platform answered ${response.status}`);
  await response.json();
}

function report(started, finished) {
  const seconds = (finished - started) / 1000;
  console.log(`${queue}: ${jobs} jobs in ${seconds.toFixed(2)} s = ${Math.round(jobs / seconds)} jobs/s`);
}

async function graphileWorker() {
  const utils = await makeWorkerUtils({ connectionString: databaseUrl, logger: new Logger(() => () => {}) });
  await utils.migrate();
  for (let i = 0; i < jobs; i += 1000) {
    const batch = [];
    for (let j = i; j < Math.min(jobs, i + 1000); j++) batch.push({ identifier: "send", payload: payload(j) });
    await utils.addJobs(batch);
  }
  await utils.release();
  let done = 0;
  let started = 0;
  let finish;
  const finished = new Promise((resolve) => (finish = resolve));
  const runner = await run({
    connectionString: databaseUrl,
    concurrency,
    noHandleSignals: true,
    pollInterval: 100,
    // Its default logger prints a line per job; Snorq logs warnings only.
    logger: new Logger(() => () => {}),
    taskList: {
      send: async (body) => {
        if (!started) started = Date.now();
        await send(body);
        done += 1;
        if (done === jobs) finish(Date.now());
      },
    },
  });
  const end = await finished;
  report(started, end);
  await runner.stop();
}

async function pgBoss() {
  const boss = new PgBoss({ connectionString: databaseUrl, max: concurrency + 4 });
  boss.on("error", (err) => console.error(err));
  await boss.start();
  await boss.createQueue("send");
  for (let i = 0; i < jobs; i += 1000) {
    const batch = [];
    for (let j = i; j < Math.min(jobs, i + 1000); j++) batch.push({ data: payload(j) });
    await boss.insert("send", batch);
  }
  let done = 0;
  let started = 0;
  let finish;
  const finished = new Promise((resolve) => (finish = resolve));
  await boss.work("send", { batchSize: concurrency, burstWhenBatchFull: true, pollingIntervalSeconds: 0.5 }, async (batch) => {
    if (!started) started = Date.now();
    await Promise.all(batch.map((job) => send(job.data)));
    done += batch.length;
    if (done >= jobs) finish(Date.now());
  });
  const end = await finished;
  report(started, end);
  await boss.stop({ graceful: false, wait: false });
}

if (queue === "graphile-worker") await graphileWorker();
else if (queue === "pg-boss") await pgBoss();
else {
  console.error("usage: node peers.mjs <graphile-worker|pg-boss> <database url> <platform url> <jobs> <concurrency>");
  process.exit(2);
}
process.exit(0);
