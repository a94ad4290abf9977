// heartbeat_http: blocking HTTP requests from a heartbeat-host handler in C.
//
// A small client over wasi:http/outgoing-handler, using the bindings
// `wit-bindgen c` generates for the `handler-wasi` world (gen/handler_wasi.h).
// wasi-libc here speaks WASI preview1, which has no sockets: HTTP goes
// through wasi:http, and the host sends each request after checking its
// origin against the check's grants.http.
//
//     heartbeat_http_response_t response;
//     if (!heartbeat_http_get("https://api.example.com/health", 5000, &response)) {
//         // response.error is the WASI error code, e.g. "HTTP-request-denied"
//     }
//     ... response.status, response.body (NUL-terminated), response.body_len ...
//     heartbeat_http_response_free(&response);
//
// Redirects (301, 302, 303, 307, 308 with a Location) are followed up to
// HEARTBEAT_HTTP_MAX_REDIRECTS times; the host checks each one like the
// first request.

#ifndef HEARTBEAT_HTTP_H
#define HEARTBEAT_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HEARTBEAT_HTTP_MAX_REDIRECTS 5

typedef struct {
    // The HTTP status of the final response; 0 when there was none.
    int status;
    // The body, malloc'd and NUL-terminated (body_len bytes before the NUL);
    // NULL when there was no response.
    char *body;
    size_t body_len;
    // The URL that answered (after redirects), or that failed.
    char url[512];
    // When the request failed: the WASI error-code case as the WIT spells
    // it (`HTTP-request-denied`, `connection-refused`,
    // `HTTP-response-body-size`, ...), or one this client reports itself:
    // `invalid-url`, `invalid-header`, `too-many-redirects`. Empty on
    // success.
    char error[64];
    // More about the failure, when the host said more (may be empty).
    char detail[256];
} heartbeat_http_response_t;

// GET `url`. `timeout_ms` (0: none) bounds the whole request, every
// redirect and the last byte of the body included: past it the request
// fails with `HTTP-response-timeout`. The check's timeoutMs bounds the
// whole run anyway (and stops it). Returns true when a response arrived
// (any status).
bool heartbeat_http_get(const char *url, uint32_t timeout_ms, heartbeat_http_response_t *out);

// Sends `method` to `url` with `headers` (NULL, or {name, value} pairs
// ended by {NULL, NULL}, e.g. {{"content-type", "application/json"}, {NULL,
// NULL}}) and a body of `body_len` bytes (NULL / 0 for none). A 303, or a
// 301/302 answering anything but GET or HEAD, is followed with a GET
// without body, as browsers do.
bool heartbeat_http_request(const char *method, const char *url, const char *const (*headers)[2],
                            const uint8_t *body, size_t body_len, uint32_t timeout_ms,
                            heartbeat_http_response_t *out);

// Frees the body; the struct may be reused.
void heartbeat_http_response_free(heartbeat_http_response_t *response);

#endif
