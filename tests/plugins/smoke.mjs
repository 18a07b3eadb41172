#!/usr/bin/env node
// Smoke tests of the C SDK, the example plugins and the test plugin, run
// against the JavaScript fake host in fakehost.mjs (no proxy-wasm-c host
// needed). Usage: node tests/plugins/smoke.mjs [build/wasm]
// Ends with "N passed, N failed"; exit status 1 if any failed.

import { Plugin, Shared } from './fakehost.mjs';

const dir = process.argv[2] || 'build/wasm';
let passed = 0, failed = 0;

function check(name, cond, detail) {
  if (cond) {
    passed++;
  } else {
    failed++;
    console.log('FAIL ' + name + (detail !== undefined ? ': ' + JSON.stringify(detail) : ''));
  }
}

function load(name, opts) { return new Plugin(`${dir}/${name}.wasm`, opts); }
const hdr = (p, m, k) => (p.maps[m].find(([n]) => n === k) || [])[1];
const msgs = (p) => p.logs.map((l) => l.msg);

function test(name, fn) {
  try {
    fn();
  } catch (e) {
    failed++;
    console.log('FAIL ' + name + ': threw ' + e.message);
  }
}

// ---- every module's shape -------------------------------------------------

const all = ['hello', 'http_headers', 'config_header', 'body_redact',
  'callout_auth', 'shared_counter', 'queue_producer', 'queue_consumer',
  'metrics', 'testplugin', 'testplugin_v020', 'testplugin_v010'];

for (const name of all) {
  test('shape ' + name, () => {
    const p = load(name, { config: 'x: y' });
    const ex = p.exportNames;
    const marker = name.endsWith('v010') ? 'proxy_abi_version_0_1_0'
      : name.endsWith('v020') ? 'proxy_abi_version_0_2_0' : 'proxy_abi_version_0_2_1';
    check(name + ' exports marker', ex.includes(marker));
    for (const e of ['memory', '_initialize', 'proxy_on_memory_allocate',
      'proxy_on_context_create', 'proxy_on_request_headers', 'proxy_on_done',
      'proxy_on_delete']) {
      check(name + ' exports ' + e, ex.includes(e));
    }
    check(name + ' imports only env/wasi',
      p.imports.every((i) => i.module === 'env' || i.module === 'wasi_snapshot_preview1'));
    check(name + ' request_headers arity',
      p.x.proxy_on_request_headers.length === (name.endsWith('v010') ? 2 : 3));
  });
}

// ---- examples ---------------------------------------------------------------

test('hello', () => {
  const p = load('hello', { config: 'greeting' });
  const [vm, cf] = p.start();
  check('hello vm_start true', vm === 1);
  check('hello configure true', cf === 1);
  check('hello logs config', p.logged(/configured with "greeting"/), msgs(p));
  check('hello tick period', p.tickMs === 1000);
  p.x.proxy_on_tick(1);
  check('hello logs tick', p.logged(/hello: tick at \d+ ms/), msgs(p));
});

test('http_headers', () => {
  const p = load('http_headers');
  p.start();
  p.x.proxy_on_context_create(2, 1);
  p.maps[0] = [[':path', '/hello'], ['x-internal-token', 's3'], ['x-wasm-filter', 'client']];
  const a = p.x.proxy_on_request_headers(2, 3, 1);
  check('local response pauses', a === 1);
  check('local response 200', p.local && p.local.code === 200, p.local);
  check('local response body', p.local && p.local.body === 'hello from wasm\n');
  check('local response content-type',
    p.local && p.local.headers.some(([k, v]) => k === 'content-type' && v === 'text/plain'));
  check('token removed', hdr(p, 0, 'x-internal-token') === undefined);
  check('filter header replaced', hdr(p, 0, 'x-wasm-filter') === 'http_headers');
  check('headers logged', p.logged(/request :path: \/hello/), msgs(p));

  p.local = null;
  p.x.proxy_on_context_create(3, 1);
  p.maps[0] = [[':path', '/other']];
  check('other path continues', p.x.proxy_on_request_headers(3, 1, 1) === 0);
  check('no local response', p.local === null);
  p.maps[2] = [[':status', '200']];
  check('response continues', p.x.proxy_on_response_headers(3, 1, 0) === 0);
  check('x-hello added', hdr(p, 2, 'x-hello') === 'world');
});

test('config_header', () => {
  const p = load('config_header', { config: '  x-team :  platform \n' });
  const [, cf] = p.start();
  check('configure ok', cf === 1);
  p.x.proxy_on_context_create(2, 1);
  p.x.proxy_on_response_headers(2, 0, 0);
  check('configured header added', hdr(p, 2, 'x-team') === 'platform', p.maps[2]);
  p.x.proxy_on_delete(2);
  p.x.proxy_on_delete(1);

  const bad = load('config_header', { config: 'no colon here' });
  check('bad configuration refused', bad.start()[1] === 0);
});

test('body_redact', () => {
  const p = load('body_redact');
  p.start();
  p.x.proxy_on_context_create(2, 1);
  p.maps[2] = [['content-length', '30']];
  p.x.proxy_on_response_headers(2, 1, 0);
  check('content-length dropped', hdr(p, 2, 'content-length') === undefined);
  p.buffers[1] = new TextEncoder().encode('a secret and secret');
  check('pauses before eos', p.x.proxy_on_response_body(2, 19, 0) === 1);
  check('continues at eos', p.x.proxy_on_response_body(2, 19, 1) === 0);
  check('redacted', new TextDecoder().decode(p.buffers[1]) === 'a ****** and ******',
    new TextDecoder().decode(p.buffers[1]));

  const q = load('body_redact', { config: 'pw' });
  q.start();
  q.x.proxy_on_context_create(2, 1);
  q.buffers[1] = new TextEncoder().encode('pwpw-x-pw');
  q.x.proxy_on_response_body(2, 9, 1);
  check('configured word', new TextDecoder().decode(q.buffers[1]) === '************-x-******');
});

test('callout_auth', () => {
  const p = load('callout_auth');
  p.start();
  p.x.proxy_on_context_create(2, 1);
  p.maps[0] = [[':path', '/'], ['authorization', 'Bearer t']];
  check('pauses for callout', p.x.proxy_on_request_headers(2, 2, 1) === 1);
  const call = p.calls[0];
  check('called auth', call && call.upstream === 'auth');
  check('forwards authorization',
    call && call.headers.some(([k, v]) => k === 'authorization' && v === 'Bearer t'), call);
  check('has :method/:path/:authority',
    call && [':method', ':path', ':authority'].every((k) => call.headers.some(([n]) => n === k)));

  p.maps[6] = [[':status', '200']];
  p.effective = 1;
  p.x.proxy_on_http_call_response(1, 1, 1, 0, 0);
  check('effective context is the stream', p.effective === 2);
  check('request continued', p.continued.includes(0));
  check('no local response on 200', p.local === null);

  p.x.proxy_on_context_create(3, 1);
  p.x.proxy_on_request_headers(3, 2, 1);
  p.maps[6] = [[':status', '401']];
  p.x.proxy_on_http_call_response(1, 2, 1, 0, 0);
  check('effective context 3', p.effective === 3);
  check('403 on refusal', p.local && p.local.code === 403, p.local);

  p.local = null;
  p.x.proxy_on_context_create(4, 1);
  p.x.proxy_on_request_headers(4, 2, 1);
  p.x.proxy_on_http_call_response(1, 3, 0, 0, 0);
  check('403 on failed call', p.local && p.local.code === 403);
});

test('shared_counter', () => {
  const shared = new Shared();
  const p = load('shared_counter', { shared });
  const q = load('shared_counter', { shared });
  p.start(); q.start();
  for (const [pl, ctx] of [[p, 2], [q, 2], [p, 3]]) {
    pl.x.proxy_on_context_create(ctx, 1);
    pl.x.proxy_on_request_headers(ctx, 0, 1);
  }
  let fail = 1;
  q.onSetShared = () => fail-- > 0;      // one CAS conflict, then retry
  q.x.proxy_on_context_create(3, 1);
  q.x.proxy_on_request_headers(3, 0, 1);
  q.x.proxy_on_response_headers(3, 0, 0);
  check('counter after 4 requests with a conflict', hdr(q, 2, 'x-request-count') === '4', q.maps[2]);
  p.x.proxy_on_response_headers(3, 0, 0);
  check('per-request value kept', hdr(p, 2, 'x-request-count') === '3', p.maps[2]);
});

test('queues', () => {
  const shared = new Shared();
  const c = load('queue_consumer', { shared, vmId: 'consumer' });
  const pr = load('queue_producer', { shared, vmId: 'producer', config: 'consumer' });
  pr.start();
  pr.x.proxy_on_context_create(2, 1);
  pr.maps[0] = [[':path', '/early']];
  pr.x.proxy_on_request_headers(2, 1, 1);
  check('producer warns without queue', pr.logged(/no queue "events"/), msgs(pr));
  check('consumer configures', c.start()[1] === 1);
  for (const path of ['/a', '/b']) {
    pr.maps[0] = [[':path', path]];
    pr.x.proxy_on_request_headers(2, 1, 1);
  }
  c.x.proxy_on_queue_ready(1, 1);
  check('consumer logs /a', c.logged(/queue_consumer: event \/a$/), msgs(c));
  check('consumer logs /b', c.logged(/queue_consumer: event \/b$/), msgs(c));
  check('queue drained', shared.queues[0].items.length === 0);
});

test('metrics', () => {
  const shared = new Shared();
  const p = load('metrics', { shared });
  p.start();
  const m = (n) => shared.metrics.find((x) => x.name === n);
  check('three metrics', m('requests_total') && m('in_flight') && m('body_size'));
  p.x.proxy_on_context_create(2, 1);
  p.x.proxy_on_request_headers(2, 1, 0);
  p.x.proxy_on_request_body(2, 10, 0);
  p.x.proxy_on_request_body(2, 5, 1);
  check('in flight 1', m('in_flight').value === 1n);
  p.x.proxy_on_log(2);
  p.x.proxy_on_delete(2);
  check('requests_total 1', m('requests_total').value === 1n);
  check('in flight back to 0', m('in_flight').value === 0n);
  check('body size recorded 15', m('body_size').last === 15n);
});

// ---- test plugin ----------------------------------------------------------

function tp(config, opts = {}) {
  const p = load(opts.name || 'testplugin', { config, ...opts });
  p.res = p.start();
  return p;
}

test('testplugin basics', () => {
  const p = tp('trace\non request_headers: add_header x-a b; get_header :path; ' +
    'log info "hello world"; return pause\non response_headers: add_header x-r "1 2"');
  check('configure ok', p.res[1] === 1);
  p.x.proxy_on_context_create(2, 1);
  p.maps[0] = [[':path', '/p']];
  check('return pause', p.x.proxy_on_request_headers(2, 1, 1) === 1);
  check('trace line', p.logged(/^callback request_headers ctx=2 headers=1 eos=1$/), msgs(p));
  check('status add', p.logged(/^status proxy_add_header_map_value = 0$/));
  check('header added', hdr(p, 0, 'x-a') === 'b');
  check('value logged', p.logged(/^value :path = \/p$/), msgs(p));
  check('log text', p.logged(/^hello world$/));
  check('response default continue', p.x.proxy_on_response_headers(2, 0, 0) === 0);
  check('quoted value', hdr(p, 2, 'x-r') === '1 2');
});

test('testplugin raw and bad arguments', () => {
  const p = tp('on request_headers: raw proxy_get_buffer_bytes 99 0 10 out out; ' +
    'raw proxy_log 2 0xFFFFFFF0 100; raw proxy_log 9 s:x; ' +
    'raw proxy_get_header_map_value 0 s::path outp out; get_header nope');
  p.x.proxy_on_context_create(2, 1);
  p.maps[0] = [[':path', '/raw']];
  p.x.proxy_on_request_headers(2, 1, 0);
  check('bad buffer type', p.logged(/^status proxy_get_buffer_bytes = 2$/), msgs(p));
  check('bad pointer', p.logged(/^status proxy_log = 6$/), msgs(p));
  check('bad level', p.logged(/^status proxy_log = 2$/));
  check('raw outp data', p.logged(/^value data = \/raw$/), msgs(p));
  check('out slot size', p.logged(/^out 1 = 4$/), msgs(p));
  check('missing header not found', p.logged(/^status proxy_get_header_map_value = 1$/));
});

test('testplugin escapes, shared, queues, metrics, properties, foreign', () => {
  const p = tp('on tick: set_shared k "a\\x00b"; get_shared k; set_shared k v 12345; ' +
    'set_shared k v last; register_queue q1; enqueue q1 item; dequeue q1; dequeue last; ' +
    'define_metric counter c1; increment_metric c1 -1; increment_metric c1 3; get_metric c1; ' +
    'set_property a b val; get_property a b; call_foreign echo xyz; call_foreign nope; ' +
    'set_tick 250; log_level; time');
  p.x.proxy_on_tick(1);
  check('binary value escaped', p.logged(/^value shared = a\\x00b$/), msgs(p));
  check('cas mismatch', p.logged(/^status proxy_set_shared_data = 8$/));
  check('cas last ok', p.logs.filter((l) => l.msg === 'status proxy_set_shared_data = 0').length === 2);
  check('dequeue item', p.logged(/^value dequeue = item$/));
  check('dequeue empty', p.logged(/^status proxy_dequeue_shared_queue = 7$/));
  check('negative counter refused', p.logged(/^status proxy_increment_metric = 2$/));
  check('metric value 3', p.logged(/^value metric_value = 3$/), msgs(p));
  check('property roundtrip', p.logged(/^value property = val$/));
  check('foreign echo', p.logged(/^value foreign = xyz$/));
  check('foreign missing', p.logged(/^status proxy_call_foreign_function = 1$/));
  check('tick period', p.tickMs === 250);
  check('log level', p.logged(/^value log_level = 1$/));
});

test('SDK map decoder refuses malformed maps', () => {
  const p = tp('on request_headers: get_headers');
  p.x.proxy_on_context_create(2, 1);
  const cases = [
    [[1, 0, 0, 0, 3, 0, 0, 0, 1, 0, 0, 0, 97, 98, 99, 0, 120], 3],  // value NUL missing
    [[1, 0, 0, 0, 3, 0, 0, 0, 1, 0, 0, 0, 97, 98, 99, 1, 120, 0], 3], // key NUL wrong
    [[255, 255, 255, 255, 0, 0, 0, 0], 3],                          // count too big
    [[0], 0],                                                      // lone NUL: empty
    [[1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 97, 0, 98, 0], 0],          // a: b
  ];
  for (const [bytes, want] of cases) {
    p.logs = [];
    p.rawPairs = new Uint8Array(bytes);
    p.x.proxy_on_request_headers(2, 0, 0);
    check('decode ' + JSON.stringify(bytes) + ' -> ' + want,
      p.logged(new RegExp('^status proxy_get_header_map_pairs = ' + want + '$')), msgs(p));
  }
  check('decoded pair', p.logged(/^header a: b$/));
});

test('testplugin callouts and local responses', () => {
  const p = tp('on request_headers: http_call cluster 1000 body :method=GET :path=/x ' +
    ':authority=h; return pause\n' +
    'on http_call_response: trace; get_headers; get_body; set_effective_context caller; ' +
    'send_local_response 201 done x-a=1 "x-b=2=3"');
  p.x.proxy_on_context_create(2, 1);
  p.x.proxy_on_request_headers(2, 0, 1);
  check('call made', p.calls.length === 1 && p.calls[0].body === 'body', p.calls);
  check('call headers', p.calls[0] && p.calls[0].headers.length === 3);
  check('token logged', p.logged(/^value http_call = 1$/));
  p.maps[6] = [[':status', '200']];
  p.buffers[4] = new TextEncoder().encode('answer');
  p.x.proxy_on_http_call_response(1, 1, 1, 6, 0);
  check('callout trace has caller ctx',
    p.logged(/^callback http_call_response ctx=2 token=1 headers=1 body=6 trailers=0$/), msgs(p));
  check('call headers logged', p.logged(/^header :status: 200$/), msgs(p));
  check('call body logged', p.logged(/^value buffer = answer$/));
  check('effective ctx 2', p.effective === 2);
  check('local 201', p.local && p.local.code === 201 && p.local.body === 'done');
  check('local headers', p.local && p.local.headers.length === 2 &&
    p.local.headers[1][0] === 'x-b' && p.local.headers[1][1] === '2=3', p.local);
});

test('testplugin body, trap, exit, config errors, vm config', () => {
  const p = tp('on request_body: get_body; set_body "new body"; buffer_status; return 3\n' +
    'on response_headers: unreachable\non done: return false\non log: exit 7');
  p.x.proxy_on_context_create(2, 1);
  p.buffers[0] = new TextEncoder().encode('old');
  check('any action returned', p.x.proxy_on_request_body(2, 3, 1) === 3);
  check('body read', p.logged(/^value buffer = old$/));
  check('body replaced', new TextDecoder().decode(p.buffers[0]) === 'new body');
  check('status size', p.logged(/^value buffer_status = size=8 flags=0$/), msgs(p));
  let trapped = false;
  try { p.x.proxy_on_response_headers(2, 0, 0); } catch (e) { trapped = /unreachable/.test(e.message); }
  check('unreachable traps', trapped);
  check('done false', p.x.proxy_on_done(2) === 0);
  let exited = false;
  try { p.x.proxy_on_log(2); } catch (e) { exited = p.exitCode === 7; }
  check('exit calls proc_exit', exited);

  const bad = tp('on nothing: log info x');
  check('unknown event refused', bad.res[1] === 0);
  check('error names line', bad.logged(/configuration line 1: unknown event/), msgs(bad));
  const bad2 = tp('\n\nfrobnicate');
  check('unknown command line 3', bad2.res[1] === 0 && bad2.logged(/line 3: unknown command/), msgs(bad2));
  const no = tp('return false');
  check('configure returns false', no.res[1] === 0);

  const v = tp('', { vmConfig: 'trace; log warn vm up; on configure: get_config' });
  check('vm script ran', v.logged(/^vm up$/) && v.logged(/^callback vm_start ctx=1 size=\d+$/), msgs(v));
  check('vm script configure section', v.logged(/^value config = $/), msgs(v));
});

test('testplugin wasi', () => {
  const p = tp('on tick: fd_write 1 hi; fd_write 5 x; clock 0; clock 9; random 16; environ; args; memory_grow 1');
  p.x.proxy_on_tick(1);
  check('fd_write ok', p.logged(/^status fd_write = 0$/) && p.logged(/^fd1: hi$/), msgs(p));
  check('fd_write badf', p.logged(/^status fd_write = 8$/));
  check('clock notsup', p.logged(/^status clock_time_get = 58$/));
  check('random ok', p.logged(/^status random_get = 0$/));
  check('environ', p.logged(/^value environ = A=b$/), msgs(p));
  check('memory grew', p.logged(/^value memory_grow = \d+$/));
});

test('testplugin 0.1.0', () => {
  const p = tp('on request_headers: continue_request; continue_stream response; get_config; ' +
    'clear_route_cache; close_stream; raw proxy_continue_stream 0; log_level',
  { name: 'testplugin_v010' });
  p.x.proxy_on_context_create(2, 1);
  p.x.proxy_on_request_headers(2, 0);
  check('v010 configured via proxy_get_configuration', p.res[1] === 1);
  check('continue_request import', p.logged(/^status proxy_continue_request = 0$/));
  check('continue_response import', p.logged(/^status proxy_continue_response = 0$/));
  check('get_configuration', p.logged(/^status proxy_get_configuration = 0$/), msgs(p));
  check('clear_route_cache', p.logged(/^status proxy_clear_route_cache = 0$/));
  check('close_stream unavailable', p.logged(/^error close_stream: not in this ABI version$/));
  check('raw unknown import', p.logged(/^error raw: unknown import/));
  check('no 0.2 imports', !p.imports.some((i) => /continue_stream|close_stream|get_log_level/.test(i.name)));
});

test('testplugin loop is interruptible shape', () => {
  // Only checks the command parses; running it would hang this process.
  const p = tp('on tick: loop\non log: loop_hostcall');
  check('loop commands accepted', p.res[1] === 1);
});

// ---- AssemblyScript plugins ----------------------------------------------

test('as_headers', () => {
  const p = load('as_headers', { config: 'x-as: yes', rootId: 'as_headers' });
  check('as imports wasi_unstable.proc_exit',
    p.imports.some((i) => i.module === 'wasi_unstable' && i.name === 'proc_exit'));
  check('as marker 0.2.0', p.exportNames.includes('proxy_abi_version_0_2_0'));
  const [vm, cf] = p.start();
  check('as configure', vm === 1 && cf === 1);
  p.x.proxy_on_context_create(2, 1);
  p.maps[0] = [[':path', '/x'], ['user-agent', 'smoke']];
  check('as request continues', p.x.proxy_on_request_headers(2, 2, 1) === 0);
  check('as logs headers', p.logged(/^as_headers: request user-agent: smoke$/), msgs(p));
  p.x.proxy_on_response_headers(2, 0, 0);
  check('as response header', hdr(p, 2, 'x-as') === 'yes', p.maps[2]);
});

test('as_local', () => {
  const p = load('as_local', { config: '/forbidden', rootId: 'as_local' });
  p.start();
  p.x.proxy_on_context_create(2, 1);
  p.maps[0] = [[':path', '/ok']];
  check('as_local passes others', p.x.proxy_on_request_headers(2, 1, 1) === 0 && p.local === null);
  p.x.proxy_on_context_create(3, 1);
  p.maps[0] = [[':path', '/forbidden']];
  check('as_local stops', p.x.proxy_on_request_headers(3, 1, 1) === 1);
  check('as_local 403', p.local && p.local.code === 403 &&
    p.local.body === 'forbidden by as_local\n', p.local);
  check('as_local header', p.local && p.local.headers.some(([k, v]) => k === 'x-as-local' && v === '1'));
});

test('as wrong root id exits', () => {
  const p = load('as_headers', { config: 'x', rootId: 'other' });
  let exited = false;
  try { p.start(); } catch (e) { exited = p.exitCode === 255; }
  check('as proc_exit on unknown root id', exited);
});

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
