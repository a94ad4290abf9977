// disk_usage: a heartbeat-host handler in C.
//
// Adds up the size of every regular file under a directory the check is
// granted, compares the total with a limit and emits
// `agent.<agent>.disk_usage` with the figures. The check's config:
//
//   "grants": {"dirs": {"/data": {"path": "/var/lib/agent/memory", "readOnly": true}}},
//   "meta": {"path": "/data", "limitMb": 512, "warnPercent": 80}
//
// Outcome: `success` while the total is within the limit (state "ok" or
// "warning"), `failed` when it is over; an error (a failed run with the
// reason) when `meta` lacks a limit or the directory cannot be read, e.g.
// because it was not granted: the sandbox has no other files.
//
// Built with wasi-libc (Debian's clang, lld, wasi-libc), bindings from
// `wit-bindgen c` and `wasm-tools component new --adapt` with the WASI
// preview1 reactor adapter: see build.sh.

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "handler.h"

#define MAX_DEPTH 32

// Totals of a directory walk.
struct usage {
    uint64_t bytes;
    uint64_t files;
    uint64_t dirs;
    uint64_t unreadable;
};

// ---- a few JSON helpers: meta is a flat object -------------------------

// Points just past `"key":` at the top level of a flat JSON object, or NULL.
static const char *json_value(const char *json, const char *key) {
    size_t key_len = strlen(key);
    for (const char *p = json; (p = strchr(p, '"')) != NULL; p++) {
        if (strncmp(p + 1, key, key_len) == 0 && p[1 + key_len] == '"') {
            const char *v = p + 2 + key_len;
            while (*v == ' ' || *v == '\t' || *v == '\n' || *v == '\r') v++;
            if (*v != ':') continue;
            v++;
            while (*v == ' ' || *v == '\t' || *v == '\n' || *v == '\r') v++;
            return v;
        }
    }
    return NULL;
}

// Reads a number field; false when absent or not a number.
static bool json_number(const char *json, const char *key, double *out) {
    const char *v = json_value(json, key);
    if (v == NULL) return false;
    char *end = NULL;
    double d = strtod(v, &end);
    if (end == v) return false;
    *out = d;
    return true;
}

// Reads a string field without escapes into buf; false when absent.
static bool json_string(const char *json, const char *key, char *buf, size_t size) {
    const char *v = json_value(json, key);
    if (v == NULL || *v != '"') return false;
    v++;
    size_t n = 0;
    while (v[n] != '"' && v[n] != '\0' && v[n] != '\\') n++;
    if (v[n] != '"' || n + 1 > size) return false;
    memcpy(buf, v, n);
    buf[n] = '\0';
    return true;
}

// Appends `text` to buf as JSON string content (escaping quotes, backslashes
// and control characters).
static void json_escape(char *buf, size_t size, const char *text) {
    size_t n = strlen(buf);
    for (const unsigned char *c = (const unsigned char *)text; *c && n + 7 < size; c++) {
        if (*c == '"' || *c == '\\') {
            buf[n++] = '\\';
            buf[n++] = (char)*c;
        } else if (*c < 0x20) {
            n += (size_t)snprintf(buf + n, size - n, "\\u%04x", *c);
        } else {
            buf[n++] = (char)*c;
        }
    }
    buf[n] = '\0';
}

// ---- the walk ------------------------------------------------------------

static void walk(const char *dir, int depth, struct usage *u) {
    DIR *d = opendir(dir);
    if (d == NULL) {
        u->unreadable++;
        return;
    }
    u->dirs++;
    struct dirent *entry;
    while ((entry = readdir(d)) != NULL) {
        if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0) continue;
        size_t len = strlen(dir) + strlen(entry->d_name) + 2;
        char *path = malloc(len);
        if (path == NULL) {
            u->unreadable++;
            continue;
        }
        snprintf(path, len, "%s/%s", dir, entry->d_name);
        struct stat st;
        if (lstat(path, &st) != 0) {
            u->unreadable++;
        } else if (S_ISREG(st.st_mode)) {
            u->files++;
            u->bytes += (uint64_t)st.st_size;
        } else if (S_ISDIR(st.st_mode)) {
            if (depth < MAX_DEPTH) {
                walk(path, depth + 1, u);
            } else {
                u->unreadable++;
            }
        }
        free(path);
    }
    closedir(d);
}

// ---- the handler -----------------------------------------------------------

static void set_string(handler_string_t *s, const char *text) { handler_string_dup(s, text); }

// Fails the run with a formatted reason.
static bool fail(handler_string_t *err, const char *format, ...) {
    char message[512];
    va_list args;
    va_start(args, format);
    vsnprintf(message, sizeof message, format, args);
    va_end(args);
    set_string(err, message);
    return false;
}

// Copies a WIT string (not NUL-terminated) into a new C string.
static char *c_string(const handler_string_t *s) {
    char *out = malloc(s->len + 1);
    if (out == NULL) return NULL;
    memcpy(out, s->ptr, s->len);
    out[s->len] = '\0';
    return out;
}

bool exports_handler_run(handler_tick_t *tick, handler_check_t *check, handler_outcome_t *ret,
                         handler_string_t *err) {
    char *meta = c_string(&check->meta);
    char *agent = c_string(&tick->agent);
    bool ok = false;
    if (meta == NULL || agent == NULL) {
        ok = fail(err, "out of memory");
        goto done;
    }

    char root[256] = "/data";
    if (json_value(meta, "path") != NULL && !json_string(meta, "path", root, sizeof root)) {
        ok = fail(err, "meta.path must be a string of at most %zu bytes without escapes",
                  sizeof root - 1);
        goto done;
    }
    double limit_mb = 0, warn_percent = 80;
    if (!json_number(meta, "limitMb", &limit_mb) || limit_mb <= 0) {
        ok = fail(err, "meta.limitMb must be a positive number (the limit in MiB)");
        goto done;
    }
    if (json_value(meta, "warnPercent") != NULL &&
        (!json_number(meta, "warnPercent", &warn_percent) || warn_percent < 0)) {
        ok = fail(err, "meta.warnPercent must be a non-negative number");
        goto done;
    }

    struct stat st;
    if (stat(root, &st) != 0) {
        ok = fail(err, "cannot read directory %s: %s (is it granted to this check?)", root,
                  strerror(errno));
        goto done;
    }
    if (!S_ISDIR(st.st_mode)) {
        ok = fail(err, "%s is not a directory", root);
        goto done;
    }
    struct usage u = {0};
    walk(root, 0, &u);

    uint64_t limit_bytes = (uint64_t)(limit_mb * 1024.0 * 1024.0);
    double percent = limit_bytes ? (double)u.bytes * 100.0 / (double)limit_bytes : 0;
    const char *state = percent > 100.0 ? "over" : percent >= warn_percent ? "warning" : "ok";

    char figures[1024] = "{\"path\":\"";
    json_escape(figures, sizeof figures, root);
    size_t n = strlen(figures);
    snprintf(figures + n, sizeof figures - n,
             "\",\"bytes\":%llu,\"files\":%llu,\"dirs\":%llu,\"unreadable\":%llu,"
             "\"limitBytes\":%llu,\"percent\":%.2f,\"state\":\"%s\"}",
             (unsigned long long)u.bytes, (unsigned long long)u.files,
             (unsigned long long)u.dirs, (unsigned long long)u.unreadable,
             (unsigned long long)limit_bytes, percent, state);

    if (strcmp(state, "ok") != 0) {
        handler_string_t message, key, value;
        char text[128];
        snprintf(text, sizeof text, "disk usage %s: %.2f%% of the limit", state, percent);
        set_string(&message, text);
        set_string(&key, "path");
        set_string(&value, root);
        heartbeat_handler_host_field_t field = {key, value};
        heartbeat_handler_host_list_field_t fields = {&field, 1};
        heartbeat_handler_host_log(HEARTBEAT_HANDLER_HOST_LEVEL_WARN, &message, &fields);
        handler_string_free(&message);
        handler_string_free(&key);
        handler_string_free(&value);
    }

    char event_type[300];
    snprintf(event_type, sizeof event_type, "agent.%s.disk_usage", agent);
    handler_string_t type_s, payload_s, emit_err;
    set_string(&type_s, event_type);
    set_string(&payload_s, figures);
    bool emitted = heartbeat_handler_host_emit(&type_s, &payload_s, &emit_err);
    handler_string_free(&type_s);
    handler_string_free(&payload_s);
    if (!emitted) {
        // The host's reason (e.g. the type is outside the check's namespace).
        *err = emit_err;
        goto done;
    }

    ret->status = strcmp(state, "over") == 0 ? HEARTBEAT_HANDLER_TYPES_STATUS_FAILED
                                             : HEARTBEAT_HANDLER_TYPES_STATUS_SUCCESS;
    if (ret->status == HEARTBEAT_HANDLER_TYPES_STATUS_FAILED) {
        // The host reports `error` as the failure's reason.
        n = strlen(figures);
        snprintf(figures + n - 1, sizeof figures - n + 1,
                 ",\"error\":\"over the limit: %.2f%% of %.0f MiB\"}", percent, limit_mb);
    }
    set_string(&ret->details, figures);
    ok = true;

done:
    free(meta);
    free(agent);
    handler_tick_free(tick);
    handler_check_free(check);
    return ok;
}
