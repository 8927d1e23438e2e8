# Hot standby: verify_token, authorize and get_profile work on a streaming
# replica and write nothing there; every write function fails with 25006
# (read-only transaction); a token regenerated on the primary is refused on
# the standby once replayed, and at once when the regenerating session uses
# synchronous_commit = remote_apply with the standby synchronous.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use TgtProfileTest;

my $primary = PostgreSQL::Test::Cluster->new('primary');
$primary->init(allows_streaming => 1);
$primary->start;

$primary->safe_psql('postgres', q{
	CREATE EXTENSION tgt_profile CASCADE;
	CREATE ROLE backend LOGIN IN ROLE tgt_profile_api;
	SELECT tgt_profile.create_client('shop', require_auth => true);
	SELECT tgt_profile.create_client('open');
});
my $token = new_token($primary, 'postgres', 'shop');
my $auth = "Bearer $token";
$primary->safe_psql('postgres', qq{
	SELECT tgt_profile.upsert_profile('shop', '{"tier": "gold"}', 'v1', 'crm-1', "authorization" => '$auth');
	SELECT tgt_profile.upsert_profile('open', '{"n": 1}', 'o1');
	SELECT batch_id FROM tgt_profile.bulk_update('shop', E'batch=pcId,tier\\nv2,silver\\n', "authorization" => '$auth');
});
my $batch_id = $primary->safe_psql('postgres', q{SELECT max(batch_id) FROM tgt_profile.batches});

$primary->backup('bk');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'bk', has_streaming => 1);
# a known application_name, for synchronous_standby_names below
$standby->append_conf('postgresql.conf',
	"primary_conninfo = '" . $primary->connstr . " application_name=standby1'");
$standby->start;
$primary->wait_for_catchup('standby1');

is($standby->safe_psql('postgres', 'SELECT pg_is_in_recovery()'), 't', 'the standby is in recovery');

# --- reads work on the standby, as any role with EXECUTE -------------------
for my $role ('postgres', 'backend')
{
	my @u = (extra_params => [ '-U', $role ]);
	is($standby->safe_psql('postgres', "SELECT tgt_profile.verify_token('shop', '$token')", @u),
		't', "$role: verify_token of the valid token is true on the standby");
	is($standby->safe_psql('postgres', "SELECT tgt_profile.verify_token('shop', 'tgtp_nope')", @u),
		'f', "$role: verify_token of a bad token is false on the standby");
	is($standby->safe_psql('postgres', "SELECT 'ok' FROM tgt_profile.authorize('shop', '$auth')", @u),
		'ok', "$role: authorize with the valid token succeeds on the standby");
	is($standby->safe_psql('postgres', qq{
			BEGIN;
			SELECT set_config('request.headers', '{"authorization": "$auth"}', true);
			SELECT 'ok' FROM tgt_profile.authorize('shop');
			COMMIT;}, @u),
		"{\"authorization\": \"$auth\"}\nok", "$role: authorize through request.headers succeeds on the standby");
	is($standby->safe_psql('postgres',
			"SELECT tgt_profile.get_profile('shop', 'v1', \"authorization\" => '$auth') #>> '{profile,tier}'", @u),
		'gold', "$role: get_profile by pcId on the standby");
	is($standby->safe_psql('postgres',
			"SELECT tgt_profile.get_profile('shop', third_party_id => 'crm-1', \"authorization\" => '$auth') ->> 'tntId'", @u),
		'v1', "$role: get_profile by thirdPartyId on the standby");
	is($standby->safe_psql('postgres', "SELECT tgt_profile.get_profile('open', 'o1') #>> '{profile,n}'", @u),
		'1', "$role: get_profile of a client without require_auth on the standby");
	my ($out, $state) = psql_state($standby, 'postgres', "SELECT tgt_profile.authorize('shop', 'Bearer tgtp_bad')", @u);
	is($state, '28P01', "$role: authorize with a bad token is 28P01 on the standby");
	($out, $state) = psql_state($standby, 'postgres', "SELECT tgt_profile.get_profile('shop', 'v1')", @u);
	is($state, '28000', "$role: get_profile without a token is 28000 on the standby");
}
is($standby->safe_psql('postgres',
		"SELECT tgt_profile.batch_status('shop', $batch_id, \"authorization\" => '$auth') ->> 'status'"),
	'complete', 'batch_status on the standby');

# --- every write fails cleanly: 25006, a read-only message -----------------
my @writes = (
	[ create_client => "SELECT tgt_profile.create_client('newco')" ],
	[ drop_client => "SELECT tgt_profile.drop_client('open')" ],
	[ grant_approver => "SELECT tgt_profile.grant_approver('shop', 'backend')" ],
	[ generate_token => "SELECT tgt_profile.generate_token('shop')" ],
	[ revoke_tokens => "SELECT tgt_profile.revoke_tokens('shop')" ],
	[ set_require_auth => "SELECT tgt_profile.set_require_auth('shop', false)" ],
	[ settings_update => "UPDATE tgt_profile.settings SET token_ttl = '1 day' WHERE client = 'shop'" ],
	[ upsert_profile => "SELECT tgt_profile.upsert_profile('shop', '{\"tier\": \"x\"}', 'v1', \"authorization\" => '$auth')" ],
	[ upsert_profile_new => "SELECT tgt_profile.upsert_profile('open', '{}', 'o2')" ],
	[ delete_profile => "SELECT tgt_profile.delete_profile('shop', 'v1', \"authorization\" => '$auth')" ],
	[ bulk_update => "SELECT tgt_profile.bulk_update('shop', E'batch=pcId,tier\\nv3,x\\n', \"authorization\" => '$auth')" ],
	[ purge_expired => "SELECT tgt_profile.purge_expired()" ],
	[ purge_expired_client => "SELECT tgt_profile.purge_expired('shop')" ],
);
for my $w (@writes)
{
	my ($name, $sql) = @$w;
	my ($out, $state, $err) = psql_state($standby, 'postgres', $sql);
	is($state, '25006', "$name on the standby fails with 25006");
	like($err, qr/read-only transaction|during recovery/, "$name on the standby says why");
	unlike($err, qr/\Q$token\E/, "$name error text carries no token");
}
my ($out, $state, $err) = psql_state($standby, 'postgres',
	"SELECT tgt_profile.upsert_profile('shop', '{}', 'v9', \"authorization\" => 'Bearer tgtp_bad')");
is($state, '28P01', 'on the standby a write with a bad token is refused by authorization first');

# The standby wrote nothing: same rows as the primary.
my $rows = q{SELECT (SELECT count(*) FROM tgt_profile.profiles) || '/' || (SELECT count(*) FROM tgt_profile.batches)
	|| '/' || (SELECT count(*) FROM tgt_profile.token_store) || '/' || (SELECT count(*) FROM tgt_profile.audit_log)};
is($standby->safe_psql('postgres', $rows), $primary->safe_psql('postgres', $rows),
	'the standby has exactly the primary\'s rows');

# --- regeneration on the primary, asynchronous standby ---------------------
my $token2 = new_token($primary, 'postgres', 'shop');
$primary->wait_for_catchup('standby1');
is($standby->safe_psql('postgres',
		"SELECT tgt_profile.verify_token('shop', '$token'), tgt_profile.verify_token('shop', '$token2')"),
	'f|t', 'once replayed, the old token fails and the new one works on the standby');
($out, $state) = psql_state($standby, 'postgres', "SELECT tgt_profile.authorize('shop', '$auth')");
is($state, '28P01', 'once replayed, authorize with the old token is 28P01 on the standby');
is($standby->safe_psql('postgres', "SELECT tgt_profile.get_profile('shop', 'v1', \"authorization\" => 'Bearer $token2') ->> 'tntId'"),
	'v1', 'get_profile with the new token on the standby');

$primary->safe_psql('postgres', q{SELECT tgt_profile.revoke_tokens('shop')});
$primary->wait_for_catchup('standby1');
is($standby->safe_psql('postgres', "SELECT tgt_profile.verify_token('shop', '$token2')"),
	'f', 'once replayed, revoke_tokens is seen on the standby');

# An already-open standby session sees the regeneration on its next statement.
my $sb = $standby->background_psql('postgres');
my $token3 = new_token($primary, 'postgres', 'shop');
$primary->wait_for_catchup('standby1');
is($sb->query_safe("SELECT tgt_profile.verify_token('shop', '$token3')"), 't',
	'an open standby session sees the new token');
my $token4 = new_token($primary, 'postgres', 'shop');
$primary->wait_for_catchup('standby1');
is($sb->query_safe("SELECT tgt_profile.verify_token('shop', '$token3') || '/' || tgt_profile.verify_token('shop', '$token4')"),
	'false/true', 'the open standby session refuses the replaced token on its next statement');
$sb->quit;

# --- synchronous standby + remote_apply: refused at once, no waiting -------
$primary->append_conf('postgresql.conf', "synchronous_standby_names = 'standby1'");
$primary->reload;
ok($primary->poll_query_until('postgres',
		q{SELECT sync_state FROM pg_stat_replication WHERE application_name = 'standby1'}, 'sync'),
	'the standby is synchronous');

# The standby is queried right after the regenerating commit returns, with
# no wait_for_catchup: remote_apply made the commit wait for the replay.
my $prev = $token4;
for my $i (1 .. 5)
{
	my $new = $primary->safe_psql('postgres', q{
		SET synchronous_commit = remote_apply;
		SELECT token FROM tgt_profile.generate_token('shop');});
	like($new, qr/^tgtp_[A-Za-z0-9_-]{48}$/, "regeneration $i with remote_apply returned a token");
	# no wait_for_catchup here
	is($standby->safe_psql('postgres',
			"SELECT tgt_profile.verify_token('shop', '$prev') || '/' || tgt_profile.verify_token('shop', '$new')"),
		'false/true', "regeneration $i: refused on the standby immediately after commit");
	$prev = $new;
}
my $remote = $primary->safe_psql('postgres', q{
	SET synchronous_commit = remote_apply;
	SELECT tgt_profile.revoke_tokens('shop');});
is($remote, '1', 'revoke_tokens with remote_apply revoked the token');
is($standby->safe_psql('postgres', "SELECT tgt_profile.verify_token('shop', '$prev')"),
	'f', 'a revocation with remote_apply is refused on the standby immediately');

$standby->stop;
$primary->stop;
done_testing();
