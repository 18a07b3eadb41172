;; Status-only hostcalls through the shim: proxy_on_request_headers(ctx, n,
;; eos) adds header "x-added: v" n times, logs once, and stores the last
;; statuses at 1024 (add) and 1028 (log); with n = 100 it adds with a bad
;; key pointer instead (status INVALID_MEMORY_ACCESS).
(module
  (import "env" "proxy_add_header_map_value"
    (func $add (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "x-added")
  (data (i32.const 32) "v")
  (data (i32.const 48) "hello")
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_memory_allocate") (param i32) (result i32)
    (i32.const 4096))
  (func (export "proxy_on_request_headers")
    (param $ctx i32) (param $n i32) (param $eos i32) (result i32)
    (local $i i32)
    (if (i32.eq (local.get $n) (i32.const 100))
      (then
        (i32.store (i32.const 1024)
          (call $add (i32.const 0) (i32.const 0x7ffffff0) (i32.const 7)
                     (i32.const 32) (i32.const 1)))
        (return (i32.const 0))))
    (block $done
      (loop $l
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (i32.store (i32.const 1024)
          (call $add (i32.const 0) (i32.const 16) (i32.const 7)
                     (i32.const 32) (i32.const 1)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $l)))
    (i32.store (i32.const 1028)
      (call $log (i32.const 2) (i32.const 48) (i32.const 5)))
    (i32.const 0)))
