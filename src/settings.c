/*-------------------------------------------------------------------------
 *
 * settings.c
 *	  A client's settings: reading them (as committed now, through the
 *	  storage layer) and the bounds and rules their durations obey.
 *
 * DESIGN.md "Bounds on settings": token_ttl <= max_token_ttl <= 10 years,
 * profile_lifetime between 1 hour and 10 years, no negative field.  The
 * settings_guard trigger and generate_token check them before any calendar
 * arithmetic could overflow, and the last_seen_at refresh rule keeps a
 * returning visitor from expiring whatever the allowed lifetime.
 *
 *-------------------------------------------------------------------------
 */
#include "tgt_profile.h"

#include "fresh_cache.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/timestamp.h"

/* Settings kept per client, and that a client does not exist. */
typedef struct SettingsEntry
{
	char		client[65];		/* the key */
	bool		found;
	TpSettings	settings;
} SettingsEntry;

/*
 * Every call that acts on a client reads its settings: a fresh cache
 * (fresh_cache.c), driven by the settings_changed trigger, answers what a
 * fresh read would without the read.
 */
static TpFreshCache settings_cache = {
	.relname = "settings",
	.trigger = "settings_changed",
	.keysize = sizeof(((SettingsEntry *) NULL)->client),
	.entrysize = sizeof(SettingsEntry),
	.max_entries = 1024,
};

/* The client's settings, read as committed now. */
static bool
read_settings(const char *client, TpSettings *out)
{
	static const AttrNumber cols[5] = {2, 3, 4, 5, 6};
	Datum		key = CStringGetTextDatum(client);
	Datum		v[5];
	bool		n[5];

	if (!tp_lookup("settings", "settings_pkey", 1, &key, 5, cols, v, n))
		return false;
	out->require_auth = DatumGetBool(v[0]);
	out->token_ttl = *DatumGetIntervalP(v[1]);
	out->max_token_ttl = *DatumGetIntervalP(v[2]);
	out->profile_lifetime = *DatumGetIntervalP(v[3]);
	out->has_daily_row_limit = !n[4];
	out->daily_row_limit = n[4] ? 0 : DatumGetInt64(v[4]);
	return true;
}

/* The client's settings; false when there is no such client. */
bool
tp_get_settings(const char *client, TpSettings *out)
{
	SettingsEntry entry;
	SettingsEntry *e;

	if (strlen(client) >= sizeof(entry.client))
		return read_settings(client, out);	/* no such client: the key is
											 * longer than any */
	memset(&entry, 0, sizeof(entry));
	strlcpy(entry.client, client, sizeof(entry.client));
	if (tp_fresh_cache_prepare(&settings_cache) &&
		(e = tp_fresh_cache_find(&settings_cache, &entry)) != NULL)
	{
		*out = e->settings;
		return e->found;
	}
	entry.found = read_settings(client, &entry.settings);
	tp_fresh_cache_keep(&settings_cache, &entry);
	*out = entry.settings;
	return entry.found;
}

void
tp_require_client(const char *client, TpSettings *out)
{
	TpSettings	dummy;

	if (!tp_get_settings(client, out ? out : &dummy))
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("client \"%s\" does not exist", client),
				 errhint("Create it with tgt_profile.create_client().")));
}

/*
 * Whether every field of a duration lies within a century: then adding it
 * to or subtracting it from any timestamp of this era cannot overflow, so
 * callers check this before calendar arithmetic (whose overflow would be a
 * 22008 where a bad argument is meant, or one client's setting failing
 * everybody's purge).
 */
bool
tp_interval_sane(const Interval *iv)
{
	return iv->month >= -TP_SANE_YEARS * MONTHS_PER_YEAR &&
		iv->month <= TP_SANE_YEARS * MONTHS_PER_YEAR &&
		iv->day >= -TP_SANE_YEARS * 366 && iv->day <= TP_SANE_YEARS * 366 &&
		iv->time >= -TP_SANE_YEARS * 366 * USECS_PER_DAY &&
		iv->time <= TP_SANE_YEARS * 366 * USECS_PER_DAY;
}

/*
 * Half the shortest time a profile_lifetime can span, in microseconds (a
 * month is at least 28 days, a day at least 23 hours across a DST change);
 * 0 when a field is negative (the settings refuse that; be safe anyway).
 * Only lifetimes under two days need the figure: longer ones count as
 * USECS_PER_DAY, which is all a caller compares with.
 */
static int64
half_lifetime(const Interval *lifetime)
{
	if (lifetime->month < 0 || lifetime->day < 0 || lifetime->time < 0)
		return 0;
	if (lifetime->month > 0 || lifetime->day >= 2 || lifetime->time >= 2 * USECS_PER_DAY)
		return USECS_PER_DAY;
	return (lifetime->day * 23 * USECS_PER_HOUR + lifetime->time) / 2;
}

/*
 * Whether an upsert that changes nothing must still write, to refresh
 * last_seen_at: when it is older than a day or than half the client's
 * profile_lifetime, whichever is shorter, so that a returning visitor never
 * expires, whatever the lifetime (DESIGN.md "Activity and expiry").
 * lifetime NULL: the client's settings are read, and only when the answer
 * depends on them (a lifetime is at least an hour: younger than half an
 * hour is never stale).
 */
bool
tp_last_seen_stale(const char *client, TimestampTz last_seen, const Interval *lifetime)
{
	TimestampTz now = tp_now();
	TpSettings	s;

	if (last_seen > now - TP_MIN_LIFETIME_USECS / 2)
		return false;
	if (last_seen <= now - USECS_PER_DAY)
		return true;
	if (lifetime == NULL)
	{
		if (!tp_get_settings(client, &s))
			return true;
		lifetime = &s.profile_lifetime;
	}
	return last_seen <= now - Min(half_lifetime(lifetime), USECS_PER_DAY);
}

/*
 * Whether a duration of the settings lies within its bounds: no field
 * negative (so that calendar arithmetic with it only moves forward), above
 * min_usecs (inclusive or not) and at most TP_MAX_DURATION_TEXT, in
 * PostgreSQL's order of intervals, which is what the CHECK constraints of
 * tgt_profile.settings compare with.
 */
bool
tp_duration_within(const Interval *iv, int64 min_usecs, bool min_inclusive)
{
	Interval	lo = {0};
	Interval	hi = {0};
	int			c;

	if (iv->month < 0 || iv->day < 0 || iv->time < 0 || !tp_interval_sane(iv))
		return false;
	lo.time = min_usecs;
	hi.month = TP_MAX_DURATION_MONTHS;
	c = DatumGetInt32(DirectFunctionCall2(interval_cmp, IntervalPGetDatum(iv),
										  IntervalPGetDatum(&lo)));
	if (c < 0 || (c == 0 && !min_inclusive))
		return false;
	return DatumGetInt32(DirectFunctionCall2(interval_cmp, IntervalPGetDatum(iv),
											 IntervalPGetDatum(&hi))) <= 0;
}
