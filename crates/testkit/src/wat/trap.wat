;; trap: executes `unreachable` on every request.
(module
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 8192))   ;; bump allocator start
  (global $RET i32 (i32.const 1024))           ;; return areas, 8-aligned
  (global $RET2 i32 (i32.const 1088))

  ;; cabi_realloc(old_ptr, old_len, align, new_len) -> ptr: a bump allocator
  ;; that never frees (echo rewinds it after each chunk).
  (func $realloc (export "cabi_realloc") (param $old i32) (param $old_len i32) (param $align i32) (param $new_len i32) (result i32)
    (local $ptr i32)
    (local.set $ptr (i32.and (i32.add (global.get $heap) (i32.sub (local.get $align) (i32.const 1)))
                             (i32.sub (i32.const 0) (local.get $align))))
    (global.set $heap (i32.add (local.get $ptr) (local.get $new_len)))
    (if (i32.gt_u (global.get $heap) (i32.mul (memory.size) (i32.const 65536)))
      (then (if (i32.eq (memory.grow (i32.add (i32.shr_u (i32.sub (global.get $heap)
                            (i32.mul (memory.size) (i32.const 65536))) (i32.const 16)) (i32.const 1)))
                        (i32.const -1))
              (then unreachable))))
    (if (local.get $old_len)
      (then (memory.copy (local.get $ptr) (local.get $old)
              (select (local.get $old_len) (local.get $new_len) (i32.lt_u (local.get $old_len) (local.get $new_len))))))
    (local.get $ptr))

  (func (export "wasi:http/incoming-handler@0.2.12#handle") (param $req i32) (param $out i32)
    unreachable
  )
)
