;; env: answers 200 with its environment, one NAME=value line per variable
;; (wasi:cli/environment), in the order the host gives them.
;; A hand-written core module; the testkit turns it into a wasi:http/proxy
;; component (see crates/testkit/src/components.rs).
(module
  (import "wasi:http/types@0.2.12" "[constructor]fields" (func $fields_new (result i32)))
  (import "wasi:http/types@0.2.12" "[constructor]outgoing-response" (func $response_new (param i32) (result i32)))
  (import "wasi:http/types@0.2.12" "[method]outgoing-response.set-status-code" (func $set_status (param i32 i32) (result i32)))
  (import "wasi:http/types@0.2.12" "[method]outgoing-response.body" (func $response_body (param i32 i32)))
  (import "wasi:http/types@0.2.12" "[method]outgoing-body.write" (func $body_write (param i32 i32)))
  (import "wasi:http/types@0.2.12" "[static]outgoing-body.finish" (func $body_finish (param i32 i32 i32 i32)))
  (import "wasi:http/types@0.2.12" "[static]response-outparam.set" (func $outparam_set (param i32 i32 i32 i32 i64 i32 i32 i32 i32)))
  (import "wasi:http/types@0.2.12" "[resource-drop]incoming-request" (func $drop_request (param i32)))
  (import "wasi:io/streams@0.2.12" "[method]output-stream.blocking-write-and-flush" (func $write_flush (param i32 i32 i32 i32)))
  (import "wasi:io/streams@0.2.12" "[resource-drop]output-stream" (func $drop_stream (param i32)))
  (import "wasi:cli/environment@0.2.12" "get-environment" (func $get_env (param i32)))
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

  (data (i32.const 16) "=\0a")
  (func $write (param $stream i32) (param $ptr i32) (param $len i32)
    (if (local.get $len) (then
      (call $write_flush (local.get $stream) (local.get $ptr) (local.get $len) (global.get $RET2))
      (if (i32.load8_u (global.get $RET2)) (then unreachable)))))
  (func (export "wasi:http/incoming-handler@0.2.12#handle") (param $req i32) (param $out i32)
    (local $resp i32) (local $body i32) (local $stream i32)
    (local $list i32) (local $n i32) (local $i i32) (local $e i32)
    (call $drop_request (local.get $req))
    (call $get_env (global.get $RET))
    (local.set $list (i32.load (global.get $RET)))
    (local.set $n (i32.load offset=4 (global.get $RET)))
    (local.set $resp (call $response_new (call $fields_new)))
    (if (call $set_status (local.get $resp) (i32.const 200)) (then unreachable))
    (call $response_body (local.get $resp) (global.get $RET))
    (if (i32.load8_u (global.get $RET)) (then unreachable))
    (local.set $body (i32.load offset=4 (global.get $RET)))
    (call $outparam_set (local.get $out) (i32.const 0) (local.get $resp)
      (i32.const 0) (i64.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0))
    (call $body_write (local.get $body) (global.get $RET))
    (if (i32.load8_u (global.get $RET)) (then unreachable))
    (local.set $stream (i32.load offset=4 (global.get $RET)))
    ;; Each element: (name ptr, name len, value ptr, value len).
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $e (i32.add (local.get $list) (i32.mul (local.get $i) (i32.const 16))))
        (call $write (local.get $stream) (i32.load (local.get $e)) (i32.load offset=4 (local.get $e)))
        (call $write (local.get $stream) (i32.const 16) (i32.const 1))
        (call $write (local.get $stream) (i32.load offset=8 (local.get $e)) (i32.load offset=12 (local.get $e)))
        (call $write (local.get $stream) (i32.const 17) (i32.const 1))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (call $drop_stream (local.get $stream))
    (call $body_finish (local.get $body) (i32.const 0) (i32.const 0) (global.get $RET))
    (if (i32.load8_u (global.get $RET)) (then unreachable))
  )
)
