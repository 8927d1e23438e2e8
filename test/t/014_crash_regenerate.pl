# Crash (stop('immediate')) during a token regeneration and during a bulk
# update: after restart the committed state is whole and nothing of the
# uncommitted work is visible — the old token still valid, the new one
# absent, exactly one valid token; a regeneration committed just before the
# crash survives.  amcheck then finds the extension's indexes and heaps sound.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use TgtProfileTest;

my $node = PostgreSQL::Test::Cluster->new('crash');
$node->init;
$node->start;

$node->safe_psql('postgres', q{
	CREATE EXTENSION tgt_profile CASCADE;
	CREATE EXTENSION amcheck;
	SELECT tgt_profile.create_client('inflight', require_auth => true);
	SELECT tgt_profile.create_client('committed', require_auth => true);
	SELECT tgt_profile.create_client('bulk');
	SELECT tgt_profile.upsert_profile('bulk', '{"a": "0"}', 'p' || i) FROM generate_series(1, 10) i;
});

# 'inflight': one committed token, then a regeneration left uncommitted.
my $old = new_token($node, 'postgres', 'inflight');
# 'committed': a regeneration committed just before the crash.
my $c1 = new_token($node, 'postgres', 'committed');

my $regen = $node->background_psql('postgres', on_error_stop => 0);
$regen->query_safe('BEGIN');
my $new = $regen->query_safe(q{SELECT token FROM tgt_profile.generate_token('inflight')});
like($new, qr/^tgtp_[A-Za-z0-9_-]{48}$/, 'the in-flight regeneration returned a token');
is($regen->query_safe("SELECT tgt_profile.verify_token('inflight', '$old') || '/' || tgt_profile.verify_token('inflight', '$new')"),
	'false/true', 'inside the open transaction the new token replaced the old one');
is($node->safe_psql('postgres', "SELECT tgt_profile.verify_token('inflight', '$old') || '/' || tgt_profile.verify_token('inflight', '$new')"),
	'true/false', 'other sessions still see only the old token');

# An uncommitted bulk update in flight too.
my $bulk = $node->background_psql('postgres', on_error_stop => 0);
$bulk->query_safe('BEGIN');
my $batch = join('', "batch=pcId,a,b\n", map { "p$_,1,x\n" } 1 .. 2000);
is($bulk->query_safe("SELECT rows_total || '/' || rows_created || '/' || rows_updated FROM tgt_profile.bulk_update('bulk', '$batch')"),
	'2000/1990/10', 'the in-flight bulk update applied inside its transaction');

# The committed regeneration, then the crash at once.
my $c2 = new_token($node, 'postgres', 'committed');
$node->stop('immediate');
# the sessions lost their server; reap them
eval { $regen->quit };
eval { $bulk->quit };

$node->start;

# --- the uncommitted regeneration left nothing --------------------------
is($node->safe_psql('postgres', "SELECT tgt_profile.verify_token('inflight', '$old')"),
	't', 'after the crash the old token is still valid');
is($node->safe_psql('postgres', "SELECT tgt_profile.verify_token('inflight', '$new')"),
	'f', 'after the crash the uncommitted new token is refused');
is($node->safe_psql('postgres', "SELECT 'ok' FROM tgt_profile.authorize('inflight', 'Bearer $old')"),
	'ok', 'authorize with the old token succeeds');
my ($out, $state) = psql_state($node, 'postgres', "SELECT tgt_profile.authorize('inflight', 'Bearer $new')");
is($state, '28P01', 'authorize with the uncommitted token is 28P01');
is($node->safe_psql('postgres', q{
	SELECT count(*) FILTER (WHERE state = 'active') || '/' || count(*) FROM tgt_profile.tokens WHERE client = 'inflight'}),
	'1/1', 'exactly one token, and it is active');
is($node->safe_psql('postgres', "SELECT hint FROM tgt_profile.tokens WHERE client = 'inflight'"),
	substr($old, 0, 9), 'the one token is the old one');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM tgt_profile.audit_log WHERE client = 'inflight' AND action = 'generate_token'}),
	'1', 'the uncommitted regeneration left no audit row');

# --- the committed regeneration survived --------------------------------
is($node->safe_psql('postgres', "SELECT tgt_profile.verify_token('committed', '$c1') || '/' || tgt_profile.verify_token('committed', '$c2')"),
	'false/true', 'the regeneration committed before the crash survived');
is($node->safe_psql('postgres', q{
	SELECT string_agg(state, ',' ORDER BY token_id) FROM tgt_profile.tokens WHERE client = 'committed'}),
	'revoked,active', 'committed client: the old token revoked, exactly one valid');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM tgt_profile.audit_log WHERE client = 'committed' AND action = 'generate_token'}),
	'2', 'both committed regenerations are audited');

# --- the uncommitted bulk update left nothing ----------------------------
is($node->safe_psql('postgres', q{
	SELECT count(*) || '/' || count(*) FILTER (WHERE attributes = '{"a": "0"}') FROM tgt_profile.profiles WHERE client = 'bulk'}),
	'10/10', 'after the crash no profile of the uncommitted batch exists and none was changed');
is($node->safe_psql('postgres', q{SELECT count(*) FROM tgt_profile.batches WHERE client = 'bulk'}),
	'0', 'after the crash no batch row of the uncommitted batch');

# --- life goes on: regenerate again, still exactly one valid token -------
my $after = new_token($node, 'postgres', 'inflight');
is($node->safe_psql('postgres', "SELECT tgt_profile.verify_token('inflight', '$old') || '/' || tgt_profile.verify_token('inflight', '$after')"),
	'false/true', 'a regeneration after the restart replaces the old token');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM tgt_profile.tokens WHERE client = 'inflight' AND state = 'active'}),
	'1', 'exactly one valid token after the next regeneration');
is($node->safe_psql('postgres', q{
	SELECT rows_created FROM tgt_profile.bulk_update('bulk', E'batch=pcId,a\nnew1,1\n')}),
	'1', 'a bulk update after the restart works');

# --- amcheck: every index and table of the extension -----------------------
# (relkind 'i' and 'r': the leaves, should a table ever become partitioned)
my $indexes = $node->safe_psql('postgres', q{
	SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
	 WHERE c.relnamespace = 'tgt_profile'::regnamespace AND c.relkind = 'i'});
cmp_ok($indexes, '>=', 8, "the extension has $indexes indexes to check");
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM (
		SELECT bt_index_parent_check(c.oid, true, true)
		  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
		 WHERE c.relnamespace = 'tgt_profile'::regnamespace AND c.relkind = 'i'
		   AND c.relam = (SELECT oid FROM pg_am WHERE amname = 'btree')) s}),
	$indexes, 'bt_index_parent_check (heapallindexed, rootdescend) passes on every index');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM (
		SELECT bt_index_check(c.oid, true)
		  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
		 WHERE c.relnamespace = 'tgt_profile'::regnamespace AND c.relkind = 'i'
		   AND c.relam = (SELECT oid FROM pg_am WHERE amname = 'btree')) s}),
	$indexes, 'bt_index_check (heapallindexed) passes on every index');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM pg_class c, LATERAL verify_heapam(c.oid) v
	 WHERE c.relnamespace = 'tgt_profile'::regnamespace AND c.relkind = 'r'}),
	'0', 'verify_heapam finds no corruption in the extension\'s tables');

$node->stop;
done_testing();
