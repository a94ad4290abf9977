// meta.h: reading a check's `meta` (a flat JSON object) and writing JSON
// details in C, for the cookbook's recipes. Strings only, without escapes:
// enough for paths, URLs and names; use a JSON library for more.

#ifndef COOKBOOK_META_H
#define COOKBOOK_META_H

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

// Copies the string field `key` of `json` into buf; false when it is
// absent, not a string, has escapes or does not fit.
static inline bool meta_string(const char *json, const char *key, char *buf, size_t size) {
    size_t key_len = strlen(key);
    for (const char *p = json; (p = strchr(p, '"')) != NULL; p++) {
        if (strncmp(p + 1, key, key_len) != 0 || p[1 + key_len] != '"') {
            continue;
        }
        const char *v = p + 2 + key_len;
        v += strspn(v, " \t\r\n");
        if (*v++ != ':') {
            continue;
        }
        v += strspn(v, " \t\r\n");
        if (*v++ != '"') {
            return false;
        }
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

// Appends at most `limit` bytes of `text` to buf as the content of a JSON
// string (quotes, backslashes and control characters escaped).
static inline void json_append(char *buf, size_t size, const char *text, size_t limit) {
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

// Appends `text` to buf as it is, cut to fit.
static inline void text_append(char *buf, size_t size, const char *text) {
    size_t n = strlen(buf);
    snprintf(buf + n, size - n, "%s", text);
}

#endif
