/*
 * An outside system talking to cxstream with the NATS C client (libnats), as a non-JavaScript
 * upstream or downstream service would. Built by test/interop/cClient.test.ts with gcc.
 *
 *   cxclient publish URL            < lines "subject<TAB>msg-id<TAB>payload"
 *       publishes each line to JetStream with header Nats-Msg-Id; prints "seq duplicate" per line
 *   cxclient read URL STREAM DURABLE MAX
 *       reads up to MAX messages through the durable pull consumer DURABLE (created with
 *       js_AddConsumer when missing, so that it outlives this process), acks each, and prints one
 *       JSON line per message: {"subject": ..., "headers": {...}, "data": "..."}
 *   cxclient kv-get URL BUCKET KEY
 *       prints the value of KEY, or exits 3 when there is none
 *
 * A durable created by js_PullSubscribe itself would be deleted by natsSubscription_Unsubscribe or
 * _Drain; this reader binds to a consumer it created with js_AddConsumer and only destroys its
 * subscription, so a restarted reader continues where the last one acked.
 */
#include <nats/nats.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void fail(const char *what, natsStatus s, jsErrCode jerr) {
    fprintf(stderr, "cxclient: %s: %s (jerr %d)\n", what, natsStatus_GetText(s), (int) jerr);
    nats_PrintLastErrorStack(stderr);
    exit(2);
}

/* Prints `len` bytes as a JSON string. */
static void json_string(const char *p, int len) {
    putchar('"');
    for (int i = 0; i < len; i++) {
        unsigned char c = (unsigned char) p[i];
        if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c == '\n') printf("\\n");
        else if (c < 0x20 || c >= 0x7f) printf("\\u%04x", c);
        else putchar(c);
    }
    putchar('"');
}

static int publish(jsCtx *js) {
    char line[65536];
    while (fgets(line, sizeof line, stdin) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        char *subject = strtok(line, "\t");
        char *id = strtok(NULL, "\t");
        char *payload = strtok(NULL, "");
        if (subject == NULL || id == NULL || payload == NULL) continue;
        natsMsg *msg = NULL;
        jsPubAck *ack = NULL;
        jsErrCode jerr = 0;
        natsStatus s = natsMsg_Create(&msg, subject, NULL, payload, (int) strlen(payload));
        if (s == NATS_OK) s = natsMsgHeader_Set(msg, "Nats-Msg-Id", id);
        if (s == NATS_OK) s = js_PublishMsg(&ack, js, msg, NULL, &jerr);
        if (s != NATS_OK) fail("publish", s, jerr);
        printf("%llu %d\n", (unsigned long long) ack->Sequence, ack->Duplicate ? 1 : 0);
        jsPubAck_Destroy(ack);
        natsMsg_Destroy(msg);
    }
    return 0;
}

static int read_durable(jsCtx *js, const char *stream, const char *durable, int max) {
    jsErrCode jerr = 0;
    jsConsumerInfo *ci = NULL;
    natsStatus s = js_GetConsumerInfo(&ci, js, stream, durable, NULL, &jerr);
    if (s == NATS_NOT_FOUND) {
        jsConsumerConfig cc;
        jsConsumerConfig_Init(&cc);
        cc.Durable = durable;
        cc.AckPolicy = js_AckExplicit;
        cc.DeliverPolicy = js_DeliverAll;
        s = js_AddConsumer(&ci, js, stream, &cc, NULL, &jerr);
    }
    if (s != NATS_OK) fail("consumer", s, jerr);
    jsConsumerInfo_Destroy(ci);

    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = stream;
    so.Consumer = durable;
    natsSubscription *sub = NULL;
    s = js_PullSubscribe(&sub, js, NULL, durable, NULL, &so, &jerr);
    if (s != NATS_OK) fail("pull subscribe", s, jerr);

    int got = 0;
    while (got < max) {
        natsMsgList list = {0};
        s = natsSubscription_Fetch(&list, sub, max - got, 2000, &jerr);
        if (s == NATS_TIMEOUT) break;
        if (s != NATS_OK) fail("fetch", s, jerr);
        for (int i = 0; i < list.Count; i++) {
            natsMsg *m = list.Msgs[i];
            printf("{\"subject\":");
            json_string(natsMsg_GetSubject(m), (int) strlen(natsMsg_GetSubject(m)));
            printf(",\"headers\":{");
            const char **keys = NULL;
            int nkeys = 0;
            if (natsMsgHeader_Keys(m, &keys, &nkeys) == NATS_OK) {
                for (int k = 0; k < nkeys; k++) {
                    const char **values = NULL;
                    int nvalues = 0;
                    natsMsgHeader_Values(m, keys[k], &values, &nvalues);
                    if (k > 0) putchar(',');
                    json_string(keys[k], (int) strlen(keys[k]));
                    printf(":[");
                    for (int v = 0; v < nvalues; v++) {
                        if (v > 0) putchar(',');
                        json_string(values[v], (int) strlen(values[v]));
                    }
                    putchar(']');
                    free((void *) values);
                }
                free((void *) keys);
            }
            printf("},\"data\":");
            json_string(natsMsg_GetData(m), natsMsg_GetDataLength(m));
            printf("}\n");
            natsMsg_Ack(m, NULL);
            got++;
        }
        natsMsgList_Destroy(&list);
    }
    /* Destroy only: Unsubscribe or Drain would delete a consumer this subscription created. */
    natsSubscription_Destroy(sub);
    return 0;
}

static int kv_get(jsCtx *js, const char *bucket, const char *key) {
    kvStore *kv = NULL;
    kvEntry *entry = NULL;
    natsStatus s = js_KeyValue(&kv, js, bucket);
    if (s != NATS_OK) fail("bucket", s, 0);
    s = kvStore_Get(&entry, kv, key);
    if (s == NATS_NOT_FOUND) {
        kvStore_Destroy(kv);
        return 3;
    }
    if (s != NATS_OK) fail("get", s, 0);
    printf("%s\n", kvEntry_ValueString(entry));
    kvEntry_Destroy(entry);
    kvStore_Destroy(kv);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: cxclient publish|read|kv-get URL ...\n");
        return 2;
    }
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    natsStatus s = natsConnection_ConnectTo(&nc, argv[2]);
    if (s == NATS_OK) s = natsConnection_JetStream(&js, nc, NULL);
    if (s != NATS_OK) fail("connect", s, 0);
    int rc = 2;
    if (strcmp(argv[1], "publish") == 0) rc = publish(js);
    else if (strcmp(argv[1], "read") == 0 && argc == 6) rc = read_durable(js, argv[3], argv[4], atoi(argv[5]));
    else if (strcmp(argv[1], "kv-get") == 0 && argc == 5) rc = kv_get(js, argv[3], argv[4]);
    else fprintf(stderr, "cxclient: unknown command or arguments\n");
    fflush(stdout);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    nats_Close();
    return rc;
}
