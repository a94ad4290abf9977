// @@name@@: a heartbeat-host check handler in C.
//
// exports_handler_wasi_run is called once per run of a check that names
// this handler, in a fresh sandboxed instance. check->meta is the check's
// `meta` object from heartbeat.json, as JSON text (not NUL-terminated: WIT
// strings are pointer + length). The types and host functions come from
// gen/handler_wasi.h, which build.sh generates from wit/ (the world
// `handler-wasi`: the host's functions plus the WASI interfaces in
// wit/deps/). With `meta.url` set, the handler GETs it with
// heartbeat_http.c (wasi:http; the check must grant the origin:
// `grants.http`, or `invoke --grant-http ORIGIN`).
//
// Ownership: tick and check belong to this function (free them); strings
// put into *ret or *err must be malloc'd (handler_wasi_string_dup does
// that): the generated glue frees them after the host has read them.

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handler_wasi.h"
#include "heartbeat_http.h"

// How much of a response body goes into the details.
#define EXCERPT_BYTES 200

// Copies the string field `key` of the flat JSON object `json` (no escapes)
// into buf; false when it is absent or not such a string.
static bool json_string(const char *json, const char *key, char *buf, size_t size) {
    size_t key_len = strlen(key);
    for (const char *p = json; (p = strchr(p, '"')) != NULL; p++) {
        if (strncmp(p + 1, key, key_len) != 0 || p[1 + key_len] != '"') {
            continue;
        }
        const char *v = p + 2 + key_len;
        v += strspn(v, " \t\r\n");
        if (*v != ':') {
            continue;
        }
        v++;
        v += strspn(v, " \t\r\n");
        if (*v != '"') {
            return false;
        }
        v++;
        size_t n = strcspn(v, "\"\\");
        if (v[n] != '"' || n + 1 > size) {
            return false;
        }
        memcpy(buf, v, n);
        buf[n] = '\0';
        return true;
    }
    return false;
}

// Appends `text` (at most `limit` bytes of it) to buf as JSON string
// content, escaping quotes, backslashes and control characters.
static void json_escape(char *buf, size_t size, const char *text, size_t limit) {
    size_t n = strlen(buf);
    for (size_t i = 0; text[i] != '\0' && i < limit && n + 7 < size; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c == '"' || c == '\\') {
            buf[n++] = '\\';
            buf[n++] = (char)c;
        } else if (c < 0x20) {
            n += (size_t)snprintf(buf + n, size - n, "\\u%04x", c);
        } else {
            buf[n++] = (char)c;
        }
    }
    buf[n] = '\0';
}

bool exports_handler_wasi_run(handler_wasi_tick_t *tick, handler_wasi_check_t *check,
                              handler_wasi_outcome_t *ret, handler_wasi_string_t *err) {
    char text[512];

    snprintf(text, sizeof text, "%.*s runs on tick %.*s", (int)check->name.len,
             (const char *)check->name.ptr, (int)tick->id.len, (const char *)tick->id.ptr);
    handler_wasi_string_t message;
    handler_wasi_string_dup(&message, text);
    heartbeat_handler_host_list_field_t no_fields = {NULL, 0};
    heartbeat_handler_host_log(HEARTBEAT_HANDLER_HOST_LEVEL_INFO, &message, &no_fields);
    handler_wasi_string_free(&message);

    // Events go to the agent's bus; a check may emit under `agent.<agent>.`
    // unless it is granted more.
    handler_wasi_string_t event_type, payload, emit_err;
    snprintf(text, sizeof text, "agent.%.*s.@@name@@", (int)tick->agent.len,
             (const char *)tick->agent.ptr);
    handler_wasi_string_dup(&event_type, text);
    snprintf(text, sizeof text, "{\"metaBytes\": %zu}", check->meta.len);
    handler_wasi_string_dup(&payload, text);
    bool emitted = heartbeat_handler_host_emit(&event_type, &payload, &emit_err);
    handler_wasi_string_free(&event_type);
    handler_wasi_string_free(&payload);

    char *meta = strndup((const char *)check->meta.ptr, check->meta.len);
    handler_wasi_tick_free(tick);
    handler_wasi_check_free(check);
    if (!emitted) {
        free(meta);
        // Returning false with *err set makes the run `failed` with that reason.
        *err = emit_err;
        return false;
    }

    char url[512];
    char details[1024] = "{\"emitted\": 1";
    bool failed = false;
    if (meta != NULL && json_string(meta, "url", url, sizeof url)) {
        heartbeat_http_response_t response;
        if (!heartbeat_http_get(url, 5000, &response)) {
            // A refused origin, a connection error or a timeout: the WASI
            // error code (e.g. HTTP-request-denied) is the reason.
            snprintf(text, sizeof text, "GET %s: %s%s%s", response.url, response.error,
                     response.detail[0] ? ": " : "", response.detail);
            free(meta);
            handler_wasi_string_dup(err, text);
            return false;
        }
        size_t n = strlen(details);
        snprintf(details + n, sizeof details - n, ", \"status\": %d, \"excerpt\": \"",
                 response.status);
        json_escape(details, sizeof details, response.body, EXCERPT_BYTES);
        n = strlen(details);
        snprintf(details + n, sizeof details - n, "\"");
        if (response.status >= 400) {
            // A failed outcome's `details.error` is the run's reason.
            n = strlen(details);
            snprintf(details + n, sizeof details - n, ", \"error\": \"GET ");
            json_escape(details, sizeof details, url, sizeof url);
            n = strlen(details);
            snprintf(details + n, sizeof details - n, ": HTTP %d\"", response.status);
            failed = true;
        }
        heartbeat_http_response_free(&response);
    }
    free(meta);
    size_t n = strlen(details);
    snprintf(details + n, sizeof details - n, "}");

    // success / skipped move the check's lastRun; failed backs it off.
    ret->status = failed ? HEARTBEAT_HANDLER_TYPES_STATUS_FAILED : HEARTBEAT_HANDLER_TYPES_STATUS_SUCCESS;
    handler_wasi_string_dup(&ret->details, details);
    return true;
}
