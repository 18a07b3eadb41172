;; Multi-value results and value types a signature cannot spell.
(module
  (func (export "swap") (param i64 f32 f64) (result f64 f32 i64)
    (local.get 2) (local.get 1) (local.get 0))
  (func (export "none"))
  (func (export "simd") (param v128 i32) (result v128) (local.get 0))
  (func (export "refs") (param externref funcref) (result i32) (i32.const 0))
  (func (export "long")
    (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32
           i64 i64 i64 i64 i64 i64 i64 i64 i64 i64
           f32 f32 f32 f32 f32 f32 f32 f32 f32 f32
           f64 f64 f64 f64 f64 f64 f64 f64 f64 f64)
    (result i32)
    (i32.const 0))
  (func (export "fits")
    (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32
           i32 i32 i32 i32 i32 i32 i32 i32 i32 i32
           i32 i32 i32 i32 i32 i32 i32 i32 i32)
    (result i32)
    (i32.const 0)))
