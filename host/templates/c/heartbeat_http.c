// heartbeat_http: see heartbeat_http.h. Resources are dropped child first
// (a stream before its body, a body before its response), as wasi:http
// requires.

#include "heartbeat_http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handler_wasi.h"

// The wasi:http error-code cases, in the WIT's order (the generated tags).
static const char *const ERROR_CODES[] = {
    "DNS-timeout",
    "DNS-error",
    "destination-not-found",
    "destination-unavailable",
    "destination-IP-prohibited",
    "destination-IP-unroutable",
    "connection-refused",
    "connection-terminated",
    "connection-timeout",
    "connection-read-timeout",
    "connection-write-timeout",
    "connection-limit-reached",
    "TLS-protocol-error",
    "TLS-certificate-error",
    "TLS-alert-received",
    "HTTP-request-denied",
    "HTTP-request-length-required",
    "HTTP-request-body-size",
    "HTTP-request-method-invalid",
    "HTTP-request-URI-invalid",
    "HTTP-request-URI-too-long",
    "HTTP-request-header-section-size",
    "HTTP-request-header-size",
    "HTTP-request-trailer-section-size",
    "HTTP-request-trailer-size",
    "HTTP-response-incomplete",
    "HTTP-response-header-section-size",
    "HTTP-response-header-size",
    "HTTP-response-body-size",
    "HTTP-response-trailer-section-size",
    "HTTP-response-trailer-size",
    "HTTP-response-transfer-coding",
    "HTTP-response-content-coding",
    "HTTP-response-timeout",
    "HTTP-upgrade-failed",
    "HTTP-protocol-error",
    "loop-detected",
    "configuration-error",
    "internal-error",
};

// How much of a body one read asks for.
#define CHUNK (64 * 1024)

static bool fail(heartbeat_http_response_t *out, const char *code, const char *detail) {
    snprintf(out->error, sizeof out->error, "%s", code);
    snprintf(out->detail, sizeof out->detail, "%s", detail ? detail : "");
    return false;
}

static bool fail_code(heartbeat_http_response_t *out, wasi_http_types_error_code_t *code) {
    const char *name = code->tag < sizeof ERROR_CODES / sizeof ERROR_CODES[0]
                           ? ERROR_CODES[code->tag]
                           : "internal-error";
    char detail[64] = "";
    if (code->tag == WASI_HTTP_TYPES_ERROR_CODE_HTTP_RESPONSE_BODY_SIZE &&
        code->val.http_response_body_size.is_some) {
        snprintf(detail, sizeof detail, "over %llu bytes",
                 (unsigned long long)code->val.http_response_body_size.val);
    }
    wasi_http_types_error_code_free(code);
    return fail(out, name, detail);
}

// Splits `url` into scheme, authority and path-with-query (malloc'd).
static bool parse_url(const char *url, uint8_t *scheme, char **authority, char **path) {
    const char *rest;
    if (strncmp(url, "http://", 7) == 0) {
        *scheme = WASI_HTTP_TYPES_SCHEME_HTTP;
        rest = url + 7;
    } else if (strncmp(url, "https://", 8) == 0) {
        *scheme = WASI_HTTP_TYPES_SCHEME_HTTPS;
        rest = url + 8;
    } else {
        return false;
    }
    size_t len = strcspn(rest, "/?#");
    if (len == 0) {
        return false;
    }
    const char *tail = rest + len;
    size_t tail_len = strcspn(tail, "#");
    *authority = strndup(rest, len);
    *path = malloc(tail_len + 2);
    if (*authority == NULL || *path == NULL) {
        free(*authority);
        free(*path);
        return false;
    }
    // "" -> "/", "?q" -> "/?q"
    snprintf(*path, tail_len + 2, "%s%.*s", tail[0] == '/' ? "" : "/", (int)tail_len, tail);
    return true;
}

static wasi_http_types_method_t method_of(const char *name) {
    static const struct {
        const char *name;
        uint8_t tag;
    } known[] = {
        {"GET", WASI_HTTP_TYPES_METHOD_GET},         {"HEAD", WASI_HTTP_TYPES_METHOD_HEAD},
        {"POST", WASI_HTTP_TYPES_METHOD_POST},       {"PUT", WASI_HTTP_TYPES_METHOD_PUT},
        {"DELETE", WASI_HTTP_TYPES_METHOD_DELETE},   {"OPTIONS", WASI_HTTP_TYPES_METHOD_OPTIONS},
        {"PATCH", WASI_HTTP_TYPES_METHOD_PATCH},
    };
    wasi_http_types_method_t method;
    memset(&method, 0, sizeof method);
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        if (strcmp(name, known[i].name) == 0) {
            method.tag = known[i].tag;
            return method;
        }
    }
    method.tag = WASI_HTTP_TYPES_METHOD_OTHER;
    handler_wasi_string_set(&method.val.other, name);
    return method;
}

// Blocks until `pollable` is ready or the monotonic clock passes
// `deadline` (ns; 0: no deadline); false at the deadline.
static bool wait_until(wasi_io_poll_borrow_pollable_t pollable, uint64_t deadline) {
    if (deadline == 0) {
        wasi_io_poll_method_pollable_block(pollable);
        return true;
    }
    uint64_t now = wasi_clocks_monotonic_clock_now();
    if (now < deadline && !wasi_io_poll_method_pollable_ready(pollable)) {
        wasi_io_poll_own_pollable_t timer = wasi_clocks_monotonic_clock_subscribe_duration(deadline - now);
        wasi_io_poll_borrow_pollable_t both[2] = {pollable, wasi_io_poll_borrow_pollable(timer)};
        wasi_io_poll_list_borrow_pollable_t list = {both, 2};
        handler_wasi_list_u32_t ready;
        wasi_io_poll_poll(&list, &ready);
        handler_wasi_list_u32_free(&ready);
        wasi_io_poll_pollable_drop_own(timer);
    }
    return wasi_io_poll_method_pollable_ready(pollable);
}

// Reads the whole body of `response` into out->body, by `deadline`.
static bool read_body(wasi_http_types_own_incoming_response_t response, uint64_t deadline,
                      heartbeat_http_response_t *out) {
    wasi_http_types_own_incoming_body_t body;
    if (!wasi_http_types_method_incoming_response_consume(
            wasi_http_types_borrow_incoming_response(response), &body)) {
        return fail(out, "internal-error", "the body was taken twice");
    }
    wasi_http_types_own_input_stream_t stream;
    if (!wasi_http_types_method_incoming_body_stream(wasi_http_types_borrow_incoming_body(body),
                                                     &stream)) {
        wasi_http_types_incoming_body_drop_own(body);
        return fail(out, "internal-error", "the body stream was taken twice");
    }
    wasi_io_poll_own_pollable_t readable =
        wasi_io_streams_method_input_stream_subscribe(wasi_io_streams_borrow_input_stream(stream));
    size_t capacity = 0;
    bool ok = true;
    for (;;) {
        handler_wasi_list_u8_t chunk;
        wasi_io_streams_stream_error_t error;
        if (!wasi_io_streams_method_input_stream_read(wasi_io_streams_borrow_input_stream(stream),
                                                      CHUNK, &chunk, &error)) {
            if (error.tag == WASI_IO_STREAMS_STREAM_ERROR_LAST_OPERATION_FAILED) {
                wasi_io_error_own_error_t io = error.val.last_operation_failed;
                wasi_http_types_error_code_t code;
                if (wasi_http_types_http_error_code(wasi_io_error_borrow_error(io), &code)) {
                    ok = fail_code(out, &code);
                } else {
                    // No WASI code: wasmtime-wasi-http 48 gives a body over
                    // the check's maxHttpBytes only as text ("... body size
                    // exceeds limit: N bytes"), read back into its code.
                    handler_wasi_string_t text;
                    wasi_io_error_method_error_to_debug_string(wasi_io_error_borrow_error(io),
                                                               &text);
                    char detail[256];
                    snprintf(detail, sizeof detail, "%.*s", (int)text.len, (const char *)text.ptr);
                    handler_wasi_string_free(&text);
                    const char *name = "HTTP-response-incomplete";
                    if (strstr(detail, "body size exceeds limit") != NULL) {
                        name = strstr(detail, "request body size") != NULL ? "HTTP-request-body-size"
                                                                           : "HTTP-response-body-size";
                    }
                    ok = fail(out, name, detail);
                }
                wasi_io_error_error_drop_own(io);
            }
            break;
        }
        if (chunk.len == 0) {
            handler_wasi_list_u8_free(&chunk);
            if (!wait_until(wasi_io_poll_borrow_pollable(readable), deadline)) {
                ok = fail(out, "HTTP-response-timeout", "timeout_ms passed in the body");
                break;
            }
            continue;
        }
        if (out->body_len + chunk.len + 1 > capacity) {
            size_t wanted = capacity ? capacity * 2 : CHUNK;
            while (wanted < out->body_len + chunk.len + 1) {
                wanted *= 2;
            }
            char *grown = realloc(out->body, wanted);
            if (grown == NULL) {
                handler_wasi_list_u8_free(&chunk);
                ok = fail(out, "internal-error", "out of memory for the body");
                break;
            }
            out->body = grown;
            capacity = wanted;
        }
        memcpy(out->body + out->body_len, chunk.ptr, chunk.len);
        out->body_len += chunk.len;
        out->body[out->body_len] = '\0';
        handler_wasi_list_u8_free(&chunk);
    }
    wasi_io_poll_pollable_drop_own(readable);
    wasi_io_streams_input_stream_drop_own(stream);
    wasi_http_types_incoming_body_drop_own(body);
    if (ok && out->body == NULL) {
        out->body = calloc(1, 1);
    }
    return ok;
}

// The first Location of `response`, malloc'd, or NULL.
static char *location_of(wasi_http_types_own_incoming_response_t response) {
    wasi_http_types_own_headers_t headers =
        wasi_http_types_method_incoming_response_headers(wasi_http_types_borrow_incoming_response(response));
    wasi_http_types_field_name_t name;
    handler_wasi_string_set(&name, "location");
    handler_wasi_list_field_value_t values;
    wasi_http_types_method_fields_get(wasi_http_types_borrow_fields(headers), &name, &values);
    char *location = NULL;
    if (values.len > 0) {
        location = strndup((const char *)values.ptr[0].ptr, values.ptr[0].len);
    }
    handler_wasi_list_field_value_free(&values);
    wasi_http_types_fields_drop_own(headers);
    return location;
}

// One request, no redirects. Sets *location (malloc'd) for a redirect.
static bool send_once(const char *method, const char *const (*headers_in)[2], const uint8_t *body,
                      size_t body_len, uint64_t deadline, heartbeat_http_response_t *out,
                      char **location) {
    uint8_t scheme_tag;
    char *authority, *path;
    if (!parse_url(out->url, &scheme_tag, &authority, &path)) {
        return fail(out, "invalid-url", "the URL must be http:// or https:// and name a host");
    }

    wasi_http_types_own_fields_t headers = wasi_http_types_constructor_fields();
    for (size_t i = 0; headers_in != NULL && headers_in[i][0] != NULL; i++) {
        wasi_http_types_field_name_t name;
        wasi_http_types_field_value_t value = {(uint8_t *)headers_in[i][1], strlen(headers_in[i][1])};
        wasi_http_types_header_error_t header_error;
        handler_wasi_string_set(&name, headers_in[i][0]);
        if (!wasi_http_types_method_fields_append(wasi_http_types_borrow_fields(headers), &name,
                                                  &value, &header_error)) {
            wasi_http_types_fields_drop_own(headers);
            free(authority);
            free(path);
            return fail(out, "invalid-header", headers_in[i][0]);
        }
    }
    if (body_len > 0) {
        // A body of known length goes out with its length, not chunked.
        char length[24];
        snprintf(length, sizeof length, "%zu", body_len);
        wasi_http_types_field_name_t name;
        wasi_http_types_field_value_t value = {(uint8_t *)length, strlen(length)};
        wasi_http_types_header_error_t header_error;
        handler_wasi_string_set(&name, "content-length");
        wasi_http_types_method_fields_append(wasi_http_types_borrow_fields(headers), &name, &value,
                                             &header_error);
    }
    wasi_http_types_own_outgoing_request_t request =
        wasi_http_types_constructor_outgoing_request(headers);
    wasi_http_types_borrow_outgoing_request_t borrowed =
        wasi_http_types_borrow_outgoing_request(request);
    wasi_http_types_method_t wasi_method = method_of(method);
    wasi_http_types_scheme_t scheme;
    memset(&scheme, 0, sizeof scheme);
    scheme.tag = scheme_tag;
    handler_wasi_string_t authority_string, path_string;
    handler_wasi_string_set(&authority_string, authority);
    handler_wasi_string_set(&path_string, path);
    bool valid = wasi_http_types_method_outgoing_request_set_method(borrowed, &wasi_method) &&
                 wasi_http_types_method_outgoing_request_set_scheme(borrowed, &scheme) &&
                 wasi_http_types_method_outgoing_request_set_authority(borrowed, &authority_string) &&
                 wasi_http_types_method_outgoing_request_set_path_with_query(borrowed, &path_string);
    free(authority);
    free(path);
    if (!valid) {
        wasi_http_types_outgoing_request_drop_own(request);
        return fail(out, "invalid-url", "the request refused its method, authority or path");
    }
    wasi_http_types_own_outgoing_body_t outgoing_body;
    wasi_http_types_method_outgoing_request_body(borrowed, &outgoing_body);

    wasi_http_types_own_future_incoming_response_t future;
    wasi_http_types_error_code_t code;
    if (!wasi_http_outgoing_handler_handle(request, NULL, &future, &code)) {
        wasi_http_types_outgoing_body_drop_own(outgoing_body);
        return fail_code(out, &code);
    }
    if (body_len > 0) {
        wasi_http_types_own_output_stream_t stream;
        if (wasi_http_types_method_outgoing_body_write(
                wasi_http_types_borrow_outgoing_body(outgoing_body), &stream)) {
            for (size_t at = 0; at < body_len; at += 4096) {
                handler_wasi_list_u8_t piece = {(uint8_t *)body + at,
                                                body_len - at < 4096 ? body_len - at : 4096};
                wasi_io_streams_stream_error_t write_error;
                if (!wasi_io_streams_method_output_stream_blocking_write_and_flush(
                        wasi_io_streams_borrow_output_stream(stream), &piece, &write_error)) {
                    wasi_io_streams_stream_error_free(&write_error);
                    break;
                }
            }
            wasi_io_streams_output_stream_drop_own(stream);
        }
    }
    if (!wasi_http_types_static_outgoing_body_finish(outgoing_body, NULL, &code)) {
        wasi_http_types_future_incoming_response_drop_own(future);
        return fail_code(out, &code);
    }

    wasi_http_types_own_pollable_t ready = wasi_http_types_method_future_incoming_response_subscribe(
        wasi_http_types_borrow_future_incoming_response(future));
    bool answered = wait_until(wasi_io_poll_borrow_pollable(ready), deadline);
    wasi_io_poll_pollable_drop_own(ready);
    if (!answered) {
        wasi_http_types_future_incoming_response_drop_own(future);
        return fail(out, "HTTP-response-timeout", "timeout_ms passed before the response");
    }
    wasi_http_types_result_result_own_incoming_response_error_code_void_t answer;
    bool arrived = wasi_http_types_method_future_incoming_response_get(
        wasi_http_types_borrow_future_incoming_response(future), &answer);
    wasi_http_types_future_incoming_response_drop_own(future);
    if (!arrived || answer.is_err) {
        return fail(out, "internal-error", "no response after the wait");
    }
    if (answer.val.ok.is_err) {
        return fail_code(out, &answer.val.ok.val.err);
    }
    wasi_http_types_own_incoming_response_t response = answer.val.ok.val.ok;
    out->status = wasi_http_types_method_incoming_response_status(
        wasi_http_types_borrow_incoming_response(response));
    *location = NULL;
    if (out->status == 301 || out->status == 302 || out->status == 303 || out->status == 307 ||
        out->status == 308) {
        *location = location_of(response);
    }
    bool ok = read_body(response, deadline, out);
    wasi_http_types_incoming_response_drop_own(response);
    return ok;
}

// Resolves `location` against out->url into out->url: an absolute URL, or a
// path on the same origin.
static bool follow(heartbeat_http_response_t *out, const char *location) {
    if (strncmp(location, "http://", 7) == 0 || strncmp(location, "https://", 8) == 0) {
        return (size_t)snprintf(out->url, sizeof out->url, "%s", location) < sizeof out->url;
    }
    char *scheme_end = strstr(out->url, "://");
    if (scheme_end == NULL) {
        return false;
    }
    char joined[sizeof out->url];
    int written;
    if (location[0] == '/' && location[1] == '/') {
        // Same scheme, another authority.
        written = snprintf(joined, sizeof joined, "%.*s%s", (int)(scheme_end + 1 - out->url),
                           out->url, location);
    } else if (location[0] == '/') {
        size_t origin_len = (size_t)(scheme_end + 3 - out->url) + strcspn(scheme_end + 3, "/?#");
        written = snprintf(joined, sizeof joined, "%.*s%s", (int)origin_len, out->url, location);
    } else {
        // Relative to the directory of the current path.
        size_t path_end = (size_t)(scheme_end + 3 - out->url) + strcspn(scheme_end + 3, "?#");
        size_t dir_len = path_end;
        while (dir_len > (size_t)(scheme_end + 3 - out->url) && out->url[dir_len - 1] != '/') {
            dir_len--;
        }
        if (dir_len == (size_t)(scheme_end + 3 - out->url)) {
            written = snprintf(joined, sizeof joined, "%.*s/%s", (int)path_end, out->url, location);
        } else {
            written = snprintf(joined, sizeof joined, "%.*s%s", (int)dir_len, out->url, location);
        }
    }
    if (written < 0 || (size_t)written >= sizeof joined) {
        return false;
    }
    memcpy(out->url, joined, sizeof joined);
    return true;
}

bool heartbeat_http_request(const char *method, const char *url, const char *const (*headers)[2],
                            const uint8_t *body, size_t body_len, uint32_t timeout_ms,
                            heartbeat_http_response_t *out) {
    memset(out, 0, sizeof *out);
    if ((size_t)snprintf(out->url, sizeof out->url, "%s", url) >= sizeof out->url) {
        return fail(out, "invalid-url", "longer than 511 bytes");
    }
    uint64_t deadline =
        timeout_ms > 0 ? wasi_clocks_monotonic_clock_now() + (uint64_t)timeout_ms * 1000000u : 0;
    for (int redirects = 0;; redirects++) {
        char *location = NULL;
        if (!send_once(method, headers, body, body_len, deadline, out, &location)) {
            free(location);
            return false;
        }
        if (location == NULL) {
            return true;
        }
        if (redirects == HEARTBEAT_HTTP_MAX_REDIRECTS) {
            free(location);
            return fail(out, "too-many-redirects", NULL);
        }
        bool followed = follow(out, location);
        free(location);
        if (!followed) {
            return fail(out, "invalid-url", "a Location this client does not follow");
        }
        if (out->status == 303 ||
            ((out->status == 301 || out->status == 302) && strcmp(method, "GET") != 0 &&
             strcmp(method, "HEAD") != 0)) {
            method = "GET";
            body = NULL;
            body_len = 0;
        }
        free(out->body);
        out->body = NULL;
        out->body_len = 0;
        out->status = 0;
    }
}

bool heartbeat_http_get(const char *url, uint32_t timeout_ms, heartbeat_http_response_t *out) {
    return heartbeat_http_request("GET", url, NULL, NULL, 0, timeout_ms, out);
}

void heartbeat_http_response_free(heartbeat_http_response_t *response) {
    free(response->body);
    response->body = NULL;
    response->body_len = 0;
}
