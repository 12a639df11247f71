/* ctrec.h - one connection-tracking session as session sync carries it.
 *
 * Owns: the byte form shared by the conntrack driver (src/io/ct.c, which
 * converts kernel entries to and from it) and the session-sync protocol
 * core (src/core/ctsync.c, which only moves, orders, acknowledges and
 * digests records and never looks inside `val`).
 *
 *   key  the identity of the session: the original-direction tuple and the
 *        zone, in a canonical byte order (two records with equal keys are
 *        the same session). At most CTREC_KEY_MAX bytes.
 *   val  everything needed to recreate the session in another kernel (reply
 *        tuple, hence NAT; status bits; protocol state such as TCP state,
 *        window scale and flags; mark; timeout), as TLVs so later versions
 *        can add attributes and older ones skip them (wire.h). At most
 *        CTREC_VAL_MAX bytes.
 *   stable_hash  a hash of key and of the attributes that do not move on
 *        their own (not the timeout or counters), computed by the driver,
 *        so two tables can be compared by an order-independent digest
 *        (the XOR or sum of stable_hash over the table) without shipping
 *        the tables. */
#ifndef TND_CTREC_H
#define TND_CTREC_H

#include "types.h"

#define CTREC_KEY_MAX 48
#define CTREC_VAL_MAX 160

enum ctrec_op {
	CTREC_UPSERT = 1, /* new or updated session */
	CTREC_DELETE = 2, /* session gone */
};

struct ctrec {
	uint8_t op;        /* enum ctrec_op */
	uint8_t key_len;
	uint8_t val_len;   /* 0 for CTREC_DELETE */
	uint64_t stable_hash;
	uint8_t key[CTREC_KEY_MAX];
	uint8_t val[CTREC_VAL_MAX];
};

#endif
