;; No memory export; a function export imported straight from the host.
(module
  (import "env" "twice" (func $twice (param i32) (result i32)))
  (export "twice_again" (func $twice))
  (func (export "answer") (result i32) (i32.const 42)))
