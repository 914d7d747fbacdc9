// With current @hono/node-server, pass-through responses (streaming chat, embeddings, models) fail with
// "TypeError: immutable" when Portkey edits the upstream Response's headers. Preloaded with --require: every
// fetch Response is rebuilt with a plain, mutable Headers copy (see the project reference notes on peers (peers.md) §4).
'use strict';
const originalFetch = globalThis.fetch;
globalThis.fetch = async function (...args) {
  const response = await originalFetch.apply(this, args);
  return new Response(response.body, {
    status: response.status,
    statusText: response.statusText,
    headers: new Headers(response.headers),
  });
};
