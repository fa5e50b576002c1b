// The official OpenAI Node SDK's chat.completions.create against a Tandem edge, plain and streamed:
//   node openai_chat.mjs <base url, e.g. http://127.0.0.1:8080/v1> <api key> <messages.json> <max_tokens>
// Prints one JSON object with what the SDK returned, for tests/integration/openai_sdk_test.cpp to check.
// Errors the SDK raises (an APIError for a non-2xx answer) go to stderr with exit code 1.
import { readFileSync } from 'node:fs';
import OpenAI from 'openai';

const [baseURL, apiKey, messagesFile, maxTokens] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 60_000 });

try {
  const request = {
    model: (await client.models.list()).data[0].id,
    messages: JSON.parse(readFileSync(messagesFile, 'utf8')),
    max_tokens: Number(maxTokens),
    temperature: 0,
  };
  const plain = await client.chat.completions.create(request);
  const chunks = [];
  const stream = await client.chat.completions.create({
    ...request,
    stream: true,
    stream_options: { include_usage: true },
  });
  for await (const chunk of stream) chunks.push(chunk);
  const deltas = chunks.flatMap((chunk) => chunk.choices.map((choice) => choice.delta));
  console.log(JSON.stringify({
    plain: {
      object: plain.object,
      role: plain.choices[0].message.role,
      content: plain.choices[0].message.content,
      finish_reason: plain.choices[0].finish_reason,
      usage: plain.usage,
    },
    streamed: {
      objects: [...new Set(chunks.map((chunk) => chunk.object))],
      role: deltas.find((delta) => delta.role)?.role ?? null,
      content: deltas.map((delta) => delta.content ?? '').join(''),
      finish_reason: chunks.flatMap((chunk) => chunk.choices).find((c) => c.finish_reason)?.finish_reason ?? null,
      usage: chunks.at(-1).usage ?? null,
      chunks: chunks.length,
    },
  }));
} catch (error) {
  console.error(`${error.constructor.name}: ${error.status ?? ''} ${error.message}`);
  process.exit(1);
}
