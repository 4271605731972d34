/* cmd_serve.c: `castor serve`: parse options, start the Interactions API
 * server (src/api), wait for SIGINT/SIGTERM, then drain (stop accepting,
 * let running interactions finish for a while, cancel the rest) and close.
 */
#include "api/api.h"
#include "cli.h"
#include "core/core.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: castor serve -m MODEL [-m MODEL...] [options]\n"
            "  -m, --model PATH      GGUF model to serve (repeatable; the first is the default and\n"
            "                        also answers gemini-* model names); a path, or a model castor pull\n"
            "                        downloaded: OWNER/REPO/FILE.gguf, OWNER/REPO:QUANT or its file stem\n"
            "  --alias NAME=MODEL    another name for a served model (MODEL: its path or file stem)\n"
            "  --chat-template FILE  Jinja chat template for the preceding -m (overrides the GGUF's)\n"
            "  --thinking-budgets MIN,LOW,MEDIUM,HIGH\n"
            "                        thought tokens per thinking_level for the preceding -m\n"
            "                        (default 64,1024,4096,16384)\n"
            "  --thinking-level L    level for requests without one, preceding -m (default medium)\n"
            "  --mmproj FILE         vision projector GGUF for the preceding -m (image input)\n"
            "  --max-file-size BYTES uploaded file limit (default 2147483648); 413 beyond\n"
            "  --pdf-max-pages N     a PDF document with more pages is 400 (default 100)\n"
            "  --log-prompts         write each rendered prompt to stderr as 'castor prompt: {JSON}' (debugging)\n"
            "  --pdf-max-pixels N    rendered page pixels per PDF on a vision model (default 67108864); 400 beyond\n"
            "  --file-quota BYTES    live files + uploads in progress per API key (default\n"
            "                        21474836480 = 20 GiB; 0 = unlimited); 429 at upload start beyond\n"
            "  --file-ttl S          uploaded files expire after S seconds (default 172800 = 48 h)\n"
            "  --upload-timeout S    drop an upload session idle for S seconds (default 3600)\n"
            "  --image-cache BYTES   image embedding cache budget (default 268435456)\n"
            "  --image-decode-mem BYTES  pixel memory of images decoded at once across requests\n"
            "                        (default 536870912): larger images are refused, others wait\n"
            "  --signature-key HEX   thought-signature key, 64 hex digits (default $CASTOR_SIGNATURE_KEY,\n"
            "                        else DATA_DIR/signature.key, generated once)\n"
            "  --host ADDR           listen address (default 127.0.0.1)\n"
            "  --port N              port (default 8080; 0 = any free port)\n"
            "  --port-file FILE      write the port actually bound to FILE\n"
            "  --data-dir DIR        state directory (default ./data; holds castor.db)\n"
            "  --store URL           store URL: sqlite:PATH or postgres://user@host/db (instead of DATA_DIR/castor.db)\n"
            "  --api-keys FILE       accepted API keys, one per line (or sha256:HEX)\n"
            "  --no-auth             accept requests without a key (loopback addresses only)\n"
            "  -c, --ctx N           context positions per sequence (default min(model, 4096))\n"
            "  -t, --threads N       engine threads (default all CPUs)\n"
            "  -np, --parallel N     sequences (slots) per model (default 4)\n"
            "  --max-queue N         waiting requests per model before 429 (default 64)\n"
            "  --cache-ram MIB       host memory per model for the KV of conversations evicted from\n"
            "                        their slot, restored on a follow-up (default 256; 0: off)\n"
            "  --max-body BYTES      request body limit (default 104857600)\n"
            "  --prefix PATH         serve under a path prefix (reverse proxies)\n"
            "  --no-gemini-names     do not map gemini-* names to the first model\n"
            "  --max-output N        output cap for requests without max_output_tokens (default 256;\n"
            "                        0: until the context is full)\n"
            "  --drain-timeout S     seconds to let interactions finish on SIGTERM (default 30)\n"
            "  --request-timeout S   unary create deadline, then 504 gateway_timeout (default 600; 0: none)\n"
            "  --stream-timeout S    streaming/background deadline, then an SSE error event\n"
            "                        gateway_timeout and status failed (default 1200; 0: none)\n"
            "  --keepalive-ms N      SSE keep-alive comment after N ms without events (default 10000)\n"
            "  --idle-timeout S      close connections silent for S seconds (default 60)\n"
            "  --body-timeout S      a request body must arrive within S seconds (default 60)\n"
            "  --max-connections N   open client connections (default 16384; idle or waiting ones\n"
            "                        cost a descriptor, never a thread)\n"
            "  --max-connections-per-ip N  per client address (default 0: no limit)\n"
            "Test only: CST_FAULT=decode_fail_after:N,decode_sleep_ms:N injects engine faults.\n");
}

int cmd_serve(int argc, char **argv) {
    cst_server_params p = cst_server_default_params();
    const char *models[64], *aliases[64];
    const char *templates[64] = {0}, *budgets[64] = {0}, *levels[64] = {0}, *mmprojs[64] = {0};
    size_t nm = 0, na = 0;
    const char *port_file = NULL;
    double drain_s = 30;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED()                                                                                       \
    do {                                                                                             \
        if (!v) {                                                                                    \
            fprintf(stderr, "castor serve: %s needs a value\n", a);                                  \
            return 2;                                                                                \
        }                                                                                            \
        i++;                                                                                         \
    } while (0)
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            NEED();
            char rpath[4096], rerr[1024];
            if (!cst_cli_resolve_model(v, rpath, sizeof rpath, rerr, sizeof rerr)) {
                fprintf(stderr, "castor serve: -m %s\n", rerr);
                return 2;
            }
            if (nm < 64) models[nm++] = strcmp(rpath, v) ? strdup(rpath) : v; /* lives as long as the server */
        } else if (!strcmp(a, "--chat-template") || !strcmp(a, "--thinking-budgets") ||
                   !strcmp(a, "--thinking-level")) {
            NEED();
            if (nm == 0) {
                fprintf(stderr, "castor serve: %s applies to the preceding -m MODEL; give -m first\n", a);
                return 2;
            }
            const char **slot = a[2] == 'c' ? templates : a[11] == 'b' ? budgets : levels;
            slot[nm - 1] = v;
        } else if (!strcmp(a, "--mmproj")) {
            NEED();
            if (nm == 0) {
                fprintf(stderr, "castor serve: --mmproj applies to the preceding -m MODEL; give -m first\n");
                return 2;
            }
            mmprojs[nm - 1] = v;
        } else if (!strcmp(a, "--max-file-size") || !strcmp(a, "--file-ttl") || !strcmp(a, "--upload-timeout") ||
                   !strcmp(a, "--image-cache") || !strcmp(a, "--image-decode-mem")) {
            NEED();
            char *end;
            double x = strtod(v, &end);
            if (*end || !(x > 0)) {
                fprintf(stderr, "castor serve: %s: expected a positive number, got %s\n", a, v);
                return 2;
            }
            if (a[2] == 'm') p.max_file_size = (uint64_t)x;
            else if (a[2] == 'f') p.file_ttl_s = (int64_t)(x < 1 ? 1 : x);
            else if (a[2] == 'u') p.upload_timeout_s = x;
            else if (!strcmp(a, "--image-decode-mem")) p.image_decode_bytes = (size_t)x;
            else p.image_cache_bytes = (size_t)x;
        } else if (!strcmp(a, "--log-prompts")) {
            p.log_prompts = true;
        } else if (!strcmp(a, "--pdf-max-pages") || !strcmp(a, "--pdf-max-pixels")) {
            NEED();
            size_t nd = strspn(v, "0123456789");
            unsigned long long x = nd && nd <= 12 && !v[nd] ? strtoull(v, NULL, 10) : 0;
            if (!x) {
                fprintf(stderr, "castor serve: %s: expected a positive integer, got %s\n", a, v);
                return 2;
            }
            if (!strcmp(a, "--pdf-max-pages")) p.pdf_max_pages = (size_t)x;
            else p.pdf_max_pixels = (uint64_t)x;
        } else if (!strcmp(a, "--file-quota")) {
            NEED();
            size_t nd = strspn(v, "0123456789");
            if (nd == 0 || nd > 19 || v[nd]) {
                fprintf(stderr, "castor serve: --file-quota: expected a number of bytes (0 = unlimited), got %s\n", v);
                return 2;
            }
            unsigned long long q = strtoull(v, NULL, 10);
            p.file_quota = q ? (uint64_t)q : UINT64_MAX;
        } else if (!strcmp(a, "--signature-key")) {
            NEED();
            p.signature_key = v;
        } else if (!strcmp(a, "--alias")) {
            NEED();
            if (na < 64) aliases[na++] = v;
        } else if (!strcmp(a, "--host")) {
            NEED();
            p.host = v;
        } else if (!strcmp(a, "--port")) {
            NEED();
            p.port = atoi(v);
            if (p.port < 0 || p.port > 65535) {
                fprintf(stderr, "castor serve: bad --port %s\n", v);
                return 2;
            }
        } else if (!strcmp(a, "--port-file")) {
            NEED();
            port_file = v;
        } else if (!strcmp(a, "--data-dir")) {
            NEED();
            p.data_dir = v;
        } else if (!strcmp(a, "--store")) {
            NEED();
            p.store_url = v;
        } else if (!strcmp(a, "--api-keys")) {
            NEED();
            p.api_keys_file = v;
        } else if (!strcmp(a, "--no-auth")) {
            p.no_auth = true;
        } else if (!strcmp(a, "-c") || !strcmp(a, "--ctx")) {
            NEED();
            p.n_ctx = atoi(v);
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            NEED();
            p.n_threads = atoi(v);
        } else if (!strcmp(a, "-np") || !strcmp(a, "--parallel")) {
            NEED();
            p.n_slots = atoi(v);
        } else if (!strcmp(a, "--cache-ram")) {
            NEED();
            char *end = NULL;
            long long mib = strtoll(v, &end, 10);
            if (end == v || *end || mib < 0 || mib > (1ll << 30)) {
                fprintf(stderr, "castor serve: bad --cache-ram %s (MiB, 0 = off)\n", v);
                return 2;
            }
            p.kv_cache_bytes = (size_t)mib << 20;
        } else if (!strcmp(a, "--max-queue")) {
            NEED();
            p.max_queue = atoi(v);
        } else if (!strcmp(a, "--max-body")) {
            NEED();
            p.max_body = strtoull(v, NULL, 10);
        } else if (!strcmp(a, "--prefix")) {
            NEED();
            p.prefix = v;
        } else if (!strcmp(a, "--no-gemini-names")) {
            p.gemini_names = false;
        } else if (!strcmp(a, "--max-output")) {
            NEED();
            p.default_max_output = atoi(v);
        } else if (!strcmp(a, "--drain-timeout")) {
            NEED();
            drain_s = atof(v);
        } else if (!strcmp(a, "--request-timeout")) {
            NEED();
            p.request_timeout_s = atof(v) > 0 ? atof(v) : -1;
        } else if (!strcmp(a, "--stream-timeout")) {
            NEED();
            p.stream_timeout_s = atof(v) > 0 ? atof(v) : -1;
        } else if (!strcmp(a, "--keepalive-ms")) {
            NEED();
            p.keepalive_ms = atoi(v);
            if (p.keepalive_ms < 1) {
                fprintf(stderr, "castor serve: bad --keepalive-ms %s\n", v);
                return 2;
            }
        } else if (!strcmp(a, "--max-connections") || !strcmp(a, "--max-connections-per-ip")) {
            NEED();
            char *end;
            long x = strtol(v, &end, 10);
            if (*end || x < 0 || x > 1000000 || (x == 0 && !strcmp(a, "--max-connections"))) {
                fprintf(stderr, "castor serve: %s: expected a count, got %s\n", a, v);
                return 2;
            }
            if (!strcmp(a, "--max-connections")) p.max_connections = (int32_t)x;
            else p.max_connections_per_ip = (int32_t)x;
        } else if (!strcmp(a, "--idle-timeout")) {
            NEED();
            p.idle_timeout_s = atoi(v);
        } else if (!strcmp(a, "--body-timeout")) {
            NEED();
            p.body_timeout_s = atof(v);
        } else {
            fprintf(stderr, "castor serve: unknown option %s\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (nm == 0) {
        usage(stderr);
        fprintf(stderr, "\ncastor serve: no model: give -m PATH.gguf (for example -m ../shared/models/stories260K.gguf)\n");
        return 2;
    }
    if (p.no_auth && p.api_keys_file) {
        fprintf(stderr, "castor serve: --no-auth and --api-keys exclude each other\n");
        return 2;
    }
    p.models = models;
    p.n_models = nm;
    p.chat_templates = templates;
    p.thinking_budgets = budgets;
    p.thinking_levels = levels;
    p.mmprojs = mmprojs;
    p.aliases = aliases;
    p.n_aliases = na;

    /* block the shutdown signals in every thread; the main thread waits for them */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    char err[512];
    cst_server *srv = NULL;
    cst_status st = cst_server_start(&p, &srv, err, sizeof err);
    if (st) {
        fprintf(stderr, "castor serve: %s\n", err);
        return 1;
    }
    const int port = cst_server_port(srv);
    if (port_file) {
        char tmp[4096];
        snprintf(tmp, sizeof tmp, "%s.tmp", port_file);
        FILE *f = fopen(tmp, "w");
        if (!f || fprintf(f, "%d\n", port) < 0 || fclose(f) != 0 || rename(tmp, port_file) != 0) {
            fprintf(stderr, "castor serve: cannot write %s\n", port_file);
            cst_server_free(srv);
            return 1;
        }
    }
    cst_info("listening on http://%s:%d (%s)", p.host, port, p.no_auth ? "no auth" : "API keys required");
    int sig = 0;
    sigwait(&set, &sig);
    cst_info("%s: draining", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    cst_server_drain(srv, drain_s);
    cst_server_free(srv);
    cst_info("stopped");
    return 0;
}
