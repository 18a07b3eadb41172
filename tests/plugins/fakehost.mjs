// A minimal Proxy-Wasm host in JavaScript (Node's WebAssembly), only for
// checking the SDK and the plugins in tests/plugins and examples without
// the real host. It keeps every hostcall's effect in plain JS state so
// tests can assert on it. Not a reference for the real host's behaviour.

import { readFileSync } from 'node:fs';

const OK = 0, NOT_FOUND = 1, BAD_ARGUMENT = 2, INVALID_MEMORY_ACCESS = 6,
  EMPTY = 7, CAS_MISMATCH = 8;

export function serialize(pairs) {
  const enc = new TextEncoder();
  const ks = pairs.map(([k, v]) => [enc.encode(k), enc.encode(v)]);
  let size = 4 + 8 * ks.length;
  for (const [k, v] of ks) size += k.length + v.length + 2;
  const out = new Uint8Array(size);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, ks.length, true);
  let off = 4 + 8 * ks.length;
  ks.forEach(([k, v], i) => {
    dv.setUint32(4 + i * 8, k.length, true);
    dv.setUint32(8 + i * 8, v.length, true);
    out.set(k, off); off += k.length + 1;
    out.set(v, off); off += v.length + 1;
  });
  return out;
}

export function deserialize(bytes) {
  if (bytes.length < 4) return [];
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const n = dv.getUint32(0, true);
  const dec = new TextDecoder();
  const out = [];
  let off = 4 + 8 * n;
  for (let i = 0; i < n; i++) {
    const kl = dv.getUint32(4 + i * 8, true), vl = dv.getUint32(8 + i * 8, true);
    const k = dec.decode(bytes.subarray(off, off + kl)); off += kl + 1;
    const v = dec.decode(bytes.subarray(off, off + vl)); off += vl + 1;
    out.push([k, v]);
  }
  return out;
}

// State shared by every plugin instance of one fake proxy.
export class Shared {
  constructor() {
    this.kv = new Map();          // key -> {value: Uint8Array, cas}
    this.cas = 0;
    this.queues = [];             // {vm, name, items: [], owner}
    this.metrics = [];            // {type, name, value}
  }
}

export class Plugin {
  constructor(path, opts = {}) {
    this.shared = opts.shared || new Shared();
    this.vmId = opts.vmId || '';
    this.vmConfig = opts.vmConfig || '';
    this.config = opts.config || '';
    this.logs = [];
    this.maps = { 0: [], 1: [], 2: [], 3: [], 4: [], 5: [], 6: [], 7: [] };
    this.buffers = {};
    this.tickMs = null;
    this.effective = 0;
    this.local = null;
    this.calls = [];
    this.continued = [];
    this.properties = new Map();
    this.status = { code: 0, msg: '' };
    this.exitCode = null;
    const mod = new WebAssembly.Module(readFileSync(path));
    this.imports = WebAssembly.Module.imports(mod);
    this.exportNames = WebAssembly.Module.exports(mod).map((e) => e.name);
    this.rootId = opts.rootId || '';
    // The start section (AssemblyScript) may already call back into us.
    this.inst = new WebAssembly.Instance(mod, {
      env: this.env(), wasi_snapshot_preview1: this.wasi(),
      wasi_unstable: this.wasi(),
    });
    this.x = this.inst.exports;
    if (this.x._initialize) this.x._initialize();
  }

  u8() { return new Uint8Array(this.x.memory.buffer); }
  dv() { return new DataView(this.x.memory.buffer); }
  str(p, n) { return new TextDecoder().decode(this.u8().subarray(p, p + n)); }
  bytes(p, n) {
    if (p + n > this.x.memory.buffer.byteLength || p < 0) return null;
    return this.u8().slice(p, p + n);
  }
  put32(p, v) {
    if (p + 4 > this.x.memory.buffer.byteLength) return false;
    this.dv().setUint32(p, v >>> 0, true); return true;
  }
  // Hand bytes to the plugin through proxy_on_memory_allocate.
  give(bytes, pp, ps) {
    if (typeof bytes === 'string') bytes = new TextEncoder().encode(bytes);
    const p = this.x.proxy_on_memory_allocate
      ? this.x.proxy_on_memory_allocate(bytes.length) : this.x.malloc(bytes.length);
    if (p === 0) return 10;
    this.u8().set(bytes, p);
    if (!this.put32(pp, p) || !this.put32(ps, bytes.length)) {
      return INVALID_MEMORY_ACCESS;
    }
    return OK;
  }
  logged(re) { return this.logs.some((l) => re.test(l.msg)); }

  env() {
    const h = this;
    const sh = () => h.shared;
    const map = (m) => h.maps[m];
    return {
      proxy_log(level, p, n) {
        if (level > 5) return BAD_ARGUMENT;
        const b = h.bytes(p, n);
        if (b === null) return INVALID_MEMORY_ACCESS;
        h.logs.push({ level, msg: new TextDecoder().decode(b) });
        return OK;
      },
      proxy_get_log_level(pl) { return h.put32(pl, 1) ? OK : INVALID_MEMORY_ACCESS; },
      proxy_get_current_time_nanoseconds(pt) {
        h.dv().setBigUint64(pt, 1700000000000000000n, true); return OK;
      },
      proxy_set_tick_period_milliseconds(ms) { h.tickMs = ms; return OK; },
      proxy_get_configuration(pp, ps) { return h.give(h.config, pp, ps); },
      proxy_continue_request() { h.continued.push(0); return OK; },
      proxy_continue_response() { h.continued.push(1); return OK; },
      proxy_clear_route_cache() { return OK; },
      proxy_continue_stream(s) { if (s > 3) return BAD_ARGUMENT; h.continued.push(s); return OK; },
      proxy_close_stream(s) { return s > 3 ? BAD_ARGUMENT : OK; },
      proxy_done() { return NOT_FOUND; },
      proxy_set_effective_context(c) { h.effective = c; return OK; },
      proxy_get_buffer_bytes(t, start, max, pp, ps) {
        let b = t === 6 ? h.vmConfig : t === 7 ? h.config : h.buffers[t];
        if (t > 8) return BAD_ARGUMENT;
        if (b === undefined) return NOT_FOUND;
        if (typeof b === 'string') b = new TextEncoder().encode(b);
        start >>>= 0; max >>>= 0;
        if (start > b.length) return BAD_ARGUMENT;
        return h.give(b.subarray(start, Math.min(b.length, start + max)), pp, ps);
      },
      proxy_set_buffer_bytes(t, start, size, p, n) {
        const cur = h.buffers[t];
        if (cur === undefined) return NOT_FOUND;
        const v = h.bytes(p, n);
        if (v === null) return INVALID_MEMORY_ACCESS;
        const s = Math.min(start >>> 0, cur.length), e = Math.min(s + (size >>> 0), cur.length);
        const out = new Uint8Array(cur.length - (e - s) + v.length);
        out.set(cur.subarray(0, s)); out.set(v, s); out.set(cur.subarray(e), s + v.length);
        h.buffers[t] = out;
        return OK;
      },
      proxy_get_buffer_status(t, ps, pf) {
        const b = h.buffers[t];
        if (b === undefined) return NOT_FOUND;
        h.put32(ps, b.length); h.put32(pf, 0); return OK;
      },
      proxy_get_header_map_size(m, ps) {
        if (!map(m)) return BAD_ARGUMENT;
        return h.put32(ps, serialize(map(m)).length) ? OK : INVALID_MEMORY_ACCESS;
      },
      proxy_get_header_map_pairs(m, pp, ps) {
        if (h.rawPairs) return h.give(h.rawPairs, pp, ps);
        if (!map(m)) return BAD_ARGUMENT;
        return h.give(serialize(map(m)), pp, ps);
      },
      proxy_set_header_map_pairs(m, p, n) {
        if (!map(m)) return BAD_ARGUMENT;
        h.maps[m] = deserialize(h.bytes(p, n)); return OK;
      },
      proxy_get_header_map_value(m, kp, kn, pp, ps) {
        if (!map(m)) return BAD_ARGUMENT;
        const k = h.str(kp, kn);
        const e = map(m).find(([n]) => n === k);
        if (!e) return NOT_FOUND;
        return h.give(e[1], pp, ps);
      },
      proxy_add_header_map_value(m, kp, kn, vp, vn) {
        if (!map(m)) return BAD_ARGUMENT;
        map(m).push([h.str(kp, kn), h.str(vp, vn)]); return OK;
      },
      proxy_replace_header_map_value(m, kp, kn, vp, vn) {
        if (!map(m)) return BAD_ARGUMENT;
        const k = h.str(kp, kn);
        h.maps[m] = map(m).filter(([n]) => n !== k);
        h.maps[m].push([k, h.str(vp, vn)]); return OK;
      },
      proxy_remove_header_map_value(m, kp, kn) {
        if (!map(m)) return BAD_ARGUMENT;
        const k = h.str(kp, kn);
        h.maps[m] = map(m).filter(([n]) => n !== k); return OK;
      },
      proxy_get_status(pc, pp, ps) {
        h.put32(pc, h.status.code); return h.give(h.status.msg, pp, ps);
      },
      proxy_send_local_response(code, dp, dn, bp, bn, hp, hn, grpc) {
        h.local = { code, details: h.str(dp, dn), body: h.str(bp, bn),
          headers: deserialize(h.bytes(hp, hn)), grpc };
        return OK;
      },
      proxy_http_call(up, un, hp, hn, bp, bn, tp, tn, timeout, ptok) {
        const upstream = h.str(up, un);
        if (upstream === 'nope') return BAD_ARGUMENT;
        const token = h.calls.length + 1;
        h.calls.push({ upstream, headers: deserialize(h.bytes(hp, hn)),
          body: h.str(bp, bn), timeout });
        h.put32(ptok, token); return OK;
      },
      proxy_grpc_call() { return BAD_ARGUMENT; },
      proxy_grpc_stream() { return BAD_ARGUMENT; },
      proxy_grpc_send() { return NOT_FOUND; },
      proxy_grpc_cancel() { return NOT_FOUND; },
      proxy_grpc_close() { return NOT_FOUND; },
      proxy_get_shared_data(kp, kn, pp, ps, pcas) {
        const e = sh().kv.get(h.str(kp, kn));
        if (!e) return NOT_FOUND;
        h.put32(pcas, e.cas); return h.give(e.value, pp, ps);
      },
      proxy_set_shared_data(kp, kn, vp, vn, cas) {
        const k = h.str(kp, kn), e = sh().kv.get(k);
        if (cas !== 0 && e && e.cas !== cas) return CAS_MISMATCH;
        if (h.onSetShared && h.onSetShared()) return CAS_MISMATCH;
        sh().kv.set(k, { value: h.bytes(vp, vn), cas: ++sh().cas }); return OK;
      },
      proxy_register_shared_queue(np, nn, pq) {
        const name = h.str(np, nn);
        let i = sh().queues.findIndex((q) => q.vm === h.vmId && q.name === name);
        if (i < 0) { sh().queues.push({ vm: h.vmId, name, items: [], owner: h }); i = sh().queues.length - 1; }
        h.put32(pq, i + 1); return OK;
      },
      proxy_resolve_shared_queue(vp, vn, np, nn, pq) {
        const vm = h.str(vp, vn), name = h.str(np, nn);
        const i = sh().queues.findIndex((q) => q.vm === vm && q.name === name);
        if (i < 0) return NOT_FOUND;
        h.put32(pq, i + 1); return OK;
      },
      proxy_enqueue_shared_queue(q, p, n) {
        const e = sh().queues[q - 1];
        if (!e) return NOT_FOUND;
        e.items.push(h.bytes(p, n)); return OK;
      },
      proxy_dequeue_shared_queue(q, pp, ps) {
        const e = sh().queues[q - 1];
        if (!e) return NOT_FOUND;
        if (e.items.length === 0) return EMPTY;
        return h.give(e.items.shift(), pp, ps);
      },
      proxy_define_metric(t, np, nn, pid) {
        if (t > 2) return BAD_ARGUMENT;
        const name = h.str(np, nn);
        let i = sh().metrics.findIndex((m) => m.name === name);
        if (i < 0) { sh().metrics.push({ type: t, name, value: 0n }); i = sh().metrics.length - 1; }
        h.put32(pid, i + 1); return OK;
      },
      proxy_increment_metric(id, d) {
        const m = sh().metrics[id - 1];
        if (!m) return NOT_FOUND;
        if (m.type === 0 && d < 0n) return BAD_ARGUMENT;
        m.value += d; return OK;
      },
      proxy_record_metric(id, v) {
        const m = sh().metrics[id - 1];
        if (!m) return NOT_FOUND;
        m.value = m.type === 2 ? m.value + 1n : v; m.last = v; return OK;
      },
      proxy_get_metric(id, pv) {
        const m = sh().metrics[id - 1];
        if (!m) return NOT_FOUND;
        h.dv().setBigUint64(pv, BigInt.asUintN(64, m.value), true); return OK;
      },
      proxy_get_property(pp, pn, vp, vn) {
        const k = h.str(pp, pn);
        if (k === 'plugin_root_id') return h.give(h.rootId, vp, vn);
        if (!h.properties.has(k)) return NOT_FOUND;
        return h.give(h.properties.get(k), vp, vn);
      },
      proxy_set_property(pp, pn, vp, vn) {
        h.properties.set(h.str(pp, pn), h.str(vp, vn)); return OK;
      },
      proxy_call_foreign_function(np, nn, ap, an, pp, ps) {
        if (h.str(np, nn) !== 'echo') return NOT_FOUND;
        return h.give(h.bytes(ap, an), pp, ps);
      },
    };
  }

  wasi() {
    const h = this;
    return {
      fd_write(fd, iovs, n, pw) {
        let total = 0;
        for (let i = 0; i < n; i++) {
          const p = h.dv().getUint32(iovs + i * 8, true), l = h.dv().getUint32(iovs + i * 8 + 4, true);
          h.logs.push({ level: fd === 1 ? 2 : 4, msg: 'fd' + fd + ': ' + h.str(p, l) });
          total += l;
        }
        h.put32(pw, total); return fd === 1 || fd === 2 ? 0 : 8;
      },
      fd_close() { return 8; },
      fd_seek() { return 8; },
      clock_time_get(id, prec, pt) {
        if (id > 1) return 58;
        h.dv().setBigUint64(pt, 42n, true); return 0;
      },
      random_get(p, n) { return n > 65536 ? 28 : 0; },
      environ_sizes_get(pc, ps) { h.put32(pc, 1); h.put32(ps, 6); return 0; },
      environ_get(pv, pb) {
        h.u8().set(new TextEncoder().encode('A=b\0'), pb); h.put32(pv, pb); return 0;
      },
      args_sizes_get(pc, ps) { h.put32(pc, 0); h.put32(ps, 0); return 0; },
      args_get() { return 0; },
      proc_exit(code) { h.exitCode = code; throw new Error('proc_exit ' + code); },
    };
  }

  // Typical startup: root context 1, vm start, configure.
  start(root = 1) {
    this.x.proxy_on_context_create(root, 0);
    const vm = this.x.proxy_on_vm_start(root, this.vmConfig.length);
    const cf = this.x.proxy_on_configure(root, this.config.length);
    return [vm, cf];
  }
}
