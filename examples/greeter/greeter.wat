;; greeter: Wharf's example application.
;;
;; Answers every request with a short text greeting that names the path it
;; was asked for and the context path it is deployed under, which Wharf
;; passes in the `x-wharf-context-path` request header.
;;
;; It is a core WebAssembly module written by hand against the canonical ABI
;; of the wasi:http/proxy@0.2 world, so it builds with no wasm toolchain:
;;   cargo run -p wharf-componentize --bin wat2component -- examples/greeter/greeter.wat greeter.wasm
;; Any toolchain that makes wasi:http components (cargo component, Rust's
;; wasm32-wasip2 target, componentize-py) makes applications Wharf serves.
(module
  (import "wasi:http/types@0.2.12" "[method]incoming-request.path-with-query" (func $path (param i32 i32)))
  (import "wasi:http/types@0.2.12" "[method]incoming-request.headers" (func $headers (param i32) (result i32)))
  (import "wasi:http/types@0.2.12" "[method]fields.get" (func $fields_get (param i32 i32 i32 i32)))
  (import "wasi:http/types@0.2.12" "[method]fields.append" (func $fields_append (param i32 i32 i32 i32 i32 i32)))
  (import "wasi:http/types@0.2.12" "[resource-drop]fields" (func $drop_fields (param i32)))
  (import "wasi:http/types@0.2.12" "[constructor]fields" (func $fields_new (result i32)))
  (import "wasi:http/types@0.2.12" "[constructor]outgoing-response" (func $response_new (param i32) (result i32)))
  (import "wasi:http/types@0.2.12" "[method]outgoing-response.set-status-code" (func $set_status (param i32 i32) (result i32)))
  (import "wasi:http/types@0.2.12" "[method]outgoing-response.body" (func $response_body (param i32 i32)))
  (import "wasi:http/types@0.2.12" "[method]outgoing-body.write" (func $body_write (param i32 i32)))
  (import "wasi:http/types@0.2.12" "[static]outgoing-body.finish" (func $body_finish (param i32 i32 i32 i32)))
  (import "wasi:http/types@0.2.12" "[static]response-outparam.set" (func $outparam_set (param i32 i32 i32 i32 i64 i32 i32 i32 i32)))
  (import "wasi:http/types@0.2.12" "[resource-drop]incoming-request" (func $drop_request (param i32)))
  (import "wasi:io/streams@0.2.12" "[method]output-stream.blocking-write-and-flush" (func $write (param i32 i32 i32 i32)))
  (import "wasi:io/streams@0.2.12" "[resource-drop]output-stream" (func $drop_stream (param i32)))

  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 8192))
  (global $RET i32 (i32.const 1024))
  (data (i32.const 16) "Hello from Wharf!\0aYou asked for ")        ;; 32 bytes
  (data (i32.const 64) "\0aThis application is deployed at ")     ;; 33 bytes
  (data (i32.const 112) "x-wharf-context-path")                   ;; 20 bytes
  (data (i32.const 144) "content-type")                           ;; 12 bytes
  (data (i32.const 160) "text/plain; charset=utf-8")              ;; 25 bytes

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

  ;; append(dst, src, len) -> dst + len, copying at most up to 3 KiB of text
  (func $append (param $dst i32) (param $src i32) (param $len i32) (result i32)
    (if (i32.gt_u (local.get $len) (i32.const 1500)) (then (local.set $len (i32.const 1500))))
    (memory.copy (local.get $dst) (local.get $src) (local.get $len))
    (i32.add (local.get $dst) (local.get $len)))

  (func (export "wasi:http/incoming-handler@0.2.12#handle") (param $req i32) (param $out i32)
    (local $text i32) (local $end i32) (local $hdrs i32) (local $fields i32)
    (local $resp i32) (local $body i32) (local $stream i32)
    (local.set $text (call $realloc (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 4096)))
    (local.set $end (call $append (local.get $text) (i32.const 16) (i32.const 32)))

    ;; the path and query: option<string> at RET
    (call $path (local.get $req) (global.get $RET))
    (if (i32.load8_u (global.get $RET))
      (then (local.set $end (call $append (local.get $end)
              (i32.load offset=4 (global.get $RET)) (i32.load offset=8 (global.get $RET))))))
    (local.set $end (call $append (local.get $end) (i32.const 64) (i32.const 33)))

    ;; the context path: the first value of x-wharf-context-path (list<list<u8>>)
    (local.set $hdrs (call $headers (local.get $req)))
    (call $fields_get (local.get $hdrs) (i32.const 112) (i32.const 20) (global.get $RET))
    (if (i32.load offset=4 (global.get $RET))
      (then (local.set $end (call $append (local.get $end)
              (i32.load (i32.load (global.get $RET))) (i32.load offset=4 (i32.load (global.get $RET)))))))
    (i32.store8 (local.get $end) (i32.const 10))
    (local.set $end (i32.add (local.get $end) (i32.const 1)))
    (call $drop_fields (local.get $hdrs))
    (call $drop_request (local.get $req))

    (local.set $fields (call $fields_new))
    (call $fields_append (local.get $fields) (i32.const 144) (i32.const 12) (i32.const 160) (i32.const 25) (global.get $RET))
    (local.set $resp (call $response_new (local.get $fields)))
    (if (call $set_status (local.get $resp) (i32.const 200)) (then unreachable))
    (call $response_body (local.get $resp) (global.get $RET))
    (if (i32.load8_u (global.get $RET)) (then unreachable))
    (local.set $body (i32.load offset=4 (global.get $RET)))
    (call $outparam_set (local.get $out) (i32.const 0) (local.get $resp)
      (i32.const 0) (i64.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0))
    (call $body_write (local.get $body) (global.get $RET))
    (if (i32.load8_u (global.get $RET)) (then unreachable))
    (local.set $stream (i32.load offset=4 (global.get $RET)))
    (call $write (local.get $stream) (local.get $text) (i32.sub (local.get $end) (local.get $text)) (global.get $RET))
    (if (i32.load8_u (global.get $RET)) (then unreachable))
    (call $drop_stream (local.get $stream))
    (call $body_finish (local.get $body) (i32.const 0) (i32.const 0) (global.get $RET))
    (if (i32.load8_u (global.get $RET)) (then unreachable))
  )
)
