// The real OpenAI JavaScript client against `genai serve`.
// Usage: node client.mjs BASE_URL API_KEY MODEL_ID
// Runs models.list/retrieve and the error paths always; chat (plain and
// streaming), image generation, and an image request while a chat streams
// only with GENAI_TEST_ORCH=1 (they need the orchestrator's routes and the
// test doubles behind them; GENAI_TEST_IMAGE_MODEL names the image model).
// Ends with "N passed, N failed, N skipped" and exits 1 on any failure.
import OpenAI from 'openai';

const [base, key, modelId] = process.argv.slice(2);
if (!base || !key || !modelId) {
  console.error('usage: node client.mjs BASE_URL API_KEY MODEL_ID');
  process.exit(2);
}
const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: key, maxRetries: 0, timeout: 30000 });
let passed = 0;
let failed = 0;
let skipped = 0;

function expect(cond, what) {
  if (!cond) throw new Error(`expected ${what}`);
}

async function check(name, fn) {
  try {
    await fn();
    passed++;
    console.log(`ok   ${name}`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}: ${e && e.stack ? e.stack : e}`);
  }
}

async function expectError(promise, Cls, status, code) {
  try {
    await promise;
  } catch (e) {
    expect(e instanceof Cls, `${Cls.name}, got ${e && e.constructor && e.constructor.name}: ${e}`);
    expect(e.status === status, `status ${status}, got ${e.status}`);
    if (code) expect(e.code === code, `error code ${code}, got ${e.code}`);
    return;
  }
  throw new Error(`expected ${Cls.name}, the call succeeded`);
}

await check('models.list', async () => {
  const page = await client.models.list();
  const ids = page.data.map((m) => m.id);
  expect(ids.includes(modelId), `${modelId} in ${JSON.stringify(ids)}`);
  for (const m of page.data) {
    expect(m.object === 'model', `object "model" for ${m.id}`);
    expect(m.owned_by === 'genai', `owned_by "genai" for ${m.id}`);
    expect(Number.isInteger(m.created) && m.created > 1600000000, `a created time for ${m.id}`);
  }
});

await check('models.retrieve', async () => {
  const m = await client.models.retrieve(modelId);
  expect(m.id === modelId && m.object === 'model', `model ${modelId}, got ${JSON.stringify(m)}`);
});

await check('models.retrieve of an unknown model is a NotFoundError', async () => {
  await expectError(client.models.retrieve('no-such-model'), OpenAI.NotFoundError, 404,
    'model_not_found');
});

await check('a wrong API key is an AuthenticationError', async () => {
  const bad = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'wrong-key', maxRetries: 0 });
  await expectError(bad.models.list(), OpenAI.AuthenticationError, 401, 'unauthorized');
});

const orchTests = [
  ['chat.completions.create', async () => {
    const r = await client.chat.completions.create({
      model: modelId, messages: [{ role: 'user', content: 'Say hello.' }], max_tokens: 16,
    });
    expect(r.object === 'chat.completion', 'a chat.completion');
    expect(typeof r.choices[0].message.content === 'string' && r.choices[0].message.content.length > 0,
      'some content');
  }],
  ['chat.completions.create stream', async () => {
    const stream = await client.chat.completions.create({
      model: modelId, messages: [{ role: 'user', content: 'Count to three.' }], stream: true,
    });
    let text = '';
    let chunks = 0;
    let finish = null;
    for await (const c of stream) {
      chunks++;
      text += c.choices[0]?.delta?.content ?? '';
      finish = c.choices[0]?.finish_reason ?? finish;
    }
    expect(chunks >= 2 && text.length > 0, `streamed text, got ${chunks} chunks "${text}"`);
    expect(finish !== null, 'a finish_reason');
  }],
  ['images.generate', async () => {
    const r = await client.images.generate({
      model: process.env.GENAI_TEST_IMAGE_MODEL, prompt: 'a red cube', size: '64x64',
      response_format: 'b64_json',
    });
    const png = Buffer.from(r.data[0].b64_json, 'base64');
    expect(png.subarray(1, 4).toString() === 'PNG', 'a PNG image');
  }],
  ['images.generate while a chat streams', async () => {
    const stream = await client.chat.completions.create({
      model: modelId, messages: [{ role: 'user', content: 'Tell a long story.' }], stream: true,
    });
    let image = null;
    let text = '';
    for await (const c of stream) {
      if (image === null) {
        image = client.images.generate({
          model: process.env.GENAI_TEST_IMAGE_MODEL, prompt: 'a blue sphere', size: '64x64',
          response_format: 'b64_json',
        });
      }
      text += c.choices[0]?.delta?.content ?? '';
    }
    const r = await image;
    expect(text.length > 0, 'the chat finished with text');
    expect(Buffer.from(r.data[0].b64_json, 'base64').subarray(1, 4).toString() === 'PNG',
      'the image finished');
  }],
  ['each image moved the LLM aside and brought it back (GET /metrics)', async () => {
    const r = await fetch(`${base}/metrics`, { headers: { Authorization: `Bearer ${key}` } });
    const text = await r.text();
    const value = (name) => Number((text.match(new RegExp(`^${name} (\\S+)$`, 'm')) || [])[1]);
    expect(value('genai_orch_offloads_total') >= 2, `2 offloads, got ${value('genai_orch_offloads_total')}`);
    expect(value('genai_orch_reloads_total') >= 1, `a reload, got ${value('genai_orch_reloads_total')}`);
  }],
];

if (process.env.GENAI_TEST_ORCH === '1') {
  for (const [name, fn] of orchTests) await check(name, fn);
} else {
  for (const [name] of orchTests) {
    skipped++;
    console.log(`skip ${name}: needs the orchestrator's routes (set GENAI_TEST_ORCH=1)`);
  }
}

console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(failed > 0 ? 1 : 0);
