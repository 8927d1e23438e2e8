/*-------------------------------------------------------------------------
 *
 * attributes.h
 *	  Validation and merge of profile attributes, shared by the single
 *	  upsert and the bulk path.
 *
 *-------------------------------------------------------------------------
 */
#ifndef TGTP_ATTRIBUTES_H
#define TGTP_ATTRIBUTES_H

#include "record.h"
#include "utils/jsonb.h"

/* Room for any reason text these functions produce. */
#define TP_REASON_LEN 256

extern const char *tp_id_check(const char *what, const char *id, size_t len,
							   char *buf, size_t buflen);
extern const char *tp_attrs_check(const tp_attr *attrs, int nattrs,
								  char *buf, size_t buflen);
extern bool tp_attrs_only_removals(const tp_attr *attrs, int nattrs);
extern Jsonb *tp_attrs_merge(Jsonb *old, const tp_attr *attrs, int nattrs,
							 bool *changed, char *buf, size_t buflen,
							 const char **why);
extern int	tp_attrs_from_jsonb(Jsonb *obj, tp_attr **out);

#endif							/* TGTP_ATTRIBUTES_H */
