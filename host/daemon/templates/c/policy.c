// __NAME__: the highest score wins; ties go to the lowest index; NaN is never chosen.
// Abstains when no candidate has a usable score. Param: `min` (optional finite number):
// abstain when the best score is below it.
//
// Ownership, as wit-bindgen's C bindings define it: the request is ours to free; every string
// and list we return must be heap memory (malloc / policy_string_dup), freed by the bindings
// after the host copied it.

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"

typedef arbiter_policy_types_candidate_t candidate_t;

static bool usable(const candidate_t *c) { return c->score.is_some && !isnan(c->score.val); }

// Best first: usable before unusable, higher score first, then lower index.
static int by_score(const void *pa, const void *pb) {
    const candidate_t *a = *(const candidate_t *const *)pa, *b = *(const candidate_t *const *)pb;
    if (usable(a) != usable(b)) return usable(a) ? -1 : 1;
    if (usable(a) && a->score.val != b->score.val) return a->score.val > b->score.val ? -1 : 1;
    return a->index < b->index ? -1 : a->index > b->index;
}

__attribute__((format(printf, 2, 3))) static void dup_printf(policy_string_t *out, const char *fmt, ...) {
    char buf[256];
    va_list args;
    va_start(args, fmt);
    vsnprintf(buf, sizeof buf, fmt, args);
    va_end(args);
    policy_string_dup(out, buf);
}

static void log_info(const char *message) {
    policy_string_t s;
    policy_string_set(&s, message);
    arbiter_policy_log_log(ARBITER_POLICY_LOG_LEVEL_INFO, &s);
}

void exports_arbiter_policy_selector_info(exports_arbiter_policy_selector_policy_info_t *ret) {
    policy_string_dup(&ret->name, "__NAME__");
    policy_string_dup(&ret->version, "0.1.0");
    ret->wants_prescored = true;
    policy_string_dup(&ret->params_doc, "min: optional finite number; abstain below it");
}

bool exports_arbiter_policy_selector_select(exports_arbiter_policy_selector_request_t *req,
                                            exports_arbiter_policy_selector_selection_t *ret,
                                            exports_arbiter_policy_selector_policy_error_t *err) {
    bool ok = false, has_min = false;
    double min = 0;
    size_t n = req->candidates.len;
    candidate_t **order = NULL;
    for (size_t i = 0; i < req->params.len; i++) {
        const policy_string_t *key = &req->params.ptr[i].f0, *value = &req->params.ptr[i].f1;
        int klen = key->len > 64 ? 64 : (int)key->len, vlen = value->len > 64 ? 64 : (int)value->len;
        err->tag = ARBITER_POLICY_TYPES_POLICY_ERROR_INVALID_PARAMS;
        if (key->len != 3 || memcmp(key->ptr, "min", 3) != 0) {
            dup_printf(&err->val.invalid_params, "unknown parameter `%.*s` (accepted: min)", klen, (const char *)key->ptr);
            goto done;
        }
        char text[65] = {0}, *end;
        memcpy(text, value->ptr, (size_t)vlen);
        min = strtod(text, &end);
        has_min = true;
        if (end == text || *end != '\0' || !isfinite(min) || value->len > 64) {
            dup_printf(&err->val.invalid_params, "`min`: expected a finite number, got \"%.*s\"", vlen, (const char *)value->ptr);
            goto done;
        }
    }
    if (n == 0) {
        err->tag = ARBITER_POLICY_TYPES_POLICY_ERROR_NO_CANDIDATES;
        goto done;
    }
    order = malloc(n * sizeof *order);
    ret->ranking.ptr = malloc(n * sizeof *ret->ranking.ptr);
    if (order == NULL || ret->ranking.ptr == NULL) {
        free(ret->ranking.ptr);
        err->tag = ARBITER_POLICY_TYPES_POLICY_ERROR_FAILED;
        policy_string_dup(&err->val.failed, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n; i++) order[i] = &req->candidates.ptr[i];
    qsort(order, n, sizeof *order, by_score);
    ret->ranking.len = n;
    for (size_t i = 0; i < n; i++) ret->ranking.ptr[i] = order[i]->index;

    const candidate_t *top = order[0];
    ret->chosen.is_some = false;
    if (!usable(top)) {
        dup_printf(&ret->reason, "no candidate has a usable score");
    } else if (has_min && top->score.val < min) {
        log_info("best score is below min; abstaining");
        dup_printf(&ret->reason, "best score %g < min", (double)top->score.val);
    } else {
        ret->chosen.is_some = true;
        ret->chosen.val = top->index;
        dup_printf(&ret->reason, "candidate %u scores %g", top->index, (double)top->score.val);
    }
    ok = true;
done:
    free(order);
    exports_arbiter_policy_selector_request_free(req);
    return ok;
}
