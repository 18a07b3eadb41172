;; quiet.wat's recorder as the C SDK makes a plugin that only has an
;; on_response_headers handler: px_noop_callbacks says both that its
;; on_context_create only records the context (PX_LAZY_CONTEXT_CREATE,
;; 1 << 16) and that its on_delete only forgets it (PX_QUIET_DELETE,
;; 1 << 17). No on_log: a stream's only entry is its opening.
(module
  (memory (export "memory") 1)
  (global $trap (mut i32) (i32.const 0))
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "set_trap") (param i32) (global.set $trap (local.get 0)))
  (func (export "proxy_on_memory_allocate") (param i32) (result i32)
    (i32.const 8192))
  (func $rec (param $id i32) (param $a i32) (param $b i32) (param $c i32)
    (local $p i32)
    (local.set $p (i32.add (i32.const 1024)
                           (i32.mul (i32.load (i32.const 1020))
                                    (i32.const 16))))
    (i32.store (local.get $p) (local.get $id))
    (i32.store offset=4 (local.get $p) (local.get $a))
    (i32.store offset=8 (local.get $p) (local.get $b))
    (i32.store offset=12 (local.get $p) (local.get $c))
    (i32.store (i32.const 1020)
               (i32.add (i32.load (i32.const 1020)) (i32.const 1)))
    (if (i32.eq (global.get $trap) (local.get $id)) (then unreachable)))
  (func (export "proxy_on_context_create") (param i32 i32)
    (call $rec (i32.const 1) (local.get 0) (local.get 1) (i32.const -1)))
  (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32)
    (call $rec (i32.const 7) (local.get 0) (local.get 1) (local.get 2))
    (i32.const 0))
  (func (export "px_noop_callbacks") (result i32) (i32.const 196608))
  (func (export "proxy_on_delete") (param i32)
    (call $rec (i32.const 5) (local.get 0) (i32.const -1) (i32.const -1))))
