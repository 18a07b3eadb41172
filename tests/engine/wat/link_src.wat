;; Exports of every kind, for imports linked to another instance.
(module
  (import "env" "twice" (func $twice (param i32) (result i32)))
  (type $ii (func (param i32) (result i32)))
  (memory (export "memory") 1 4)
  (table (export "table") 1 1 funcref)
  (global (export "g") i32 (i32.const 7))
  (export "twice" (func $twice))
  (func (export "add1") (param i32) (result i32)
    (i32.add (local.get 0) (i32.const 1)))
  (func (export "boom") (param i32) (result i32) unreachable)
  ;; calls whatever the importer put in slot 0
  (func (export "call_slot") (param i32) (result i32)
    (call_indirect (type $ii) (local.get 0) (i32.const 0)))
)
