;; Bulk memory and reference types: passive data needs a data count
;; section, declarative elements, ref.func, table.grow.
(module
  (memory (export "memory") 1)
  (table $t 1 funcref)
  (data $d "hello")
  (elem declare func $f)
  (func $f (export "f") (param i32) (result i32)
    (memory.init $d (i32.const 0) (i32.const 0) (i32.const 5))
    (data.drop $d)
    (drop (table.grow $t (ref.func $f) (i32.const 1)))
    (local.get 0))
  (func (export "copy") (param i32 i32 i32)
    (memory.copy (local.get 0) (local.get 1) (local.get 2))))
