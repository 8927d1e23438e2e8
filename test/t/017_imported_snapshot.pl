# Authorization is read fresh, also under an imported snapshot: a session
# that exports a snapshot taken before a revocation cannot lend it to a new
# session (SET TRANSACTION SNAPSHOT) to keep using the revoked token, nor
# keep using it itself; an approver removed meanwhile has no rights in it.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use TgtProfileTest;

my $node = PostgreSQL::Test::Cluster->new('snapshot');
$node->init;
$node->start;

$node->safe_psql('postgres', q{
	CREATE EXTENSION tgt_profile CASCADE;
	CREATE ROLE snap_api LOGIN IN ROLE tgt_profile_api;
	CREATE ROLE snap_appr LOGIN IN ROLE tgt_profile_approver;
	SELECT tgt_profile.create_client('snap', require_auth => true);
	SELECT tgt_profile.grant_approver('snap', 'snap_appr');
});
my $tok = new_token($node, 'postgres', 'snap');

# The exporter: a REPEATABLE READ transaction whose snapshot predates the
# revocation; it has used the token once (the backend's cache saw it valid).
my $exporter = $node->background_psql('postgres', on_error_stop => 0);
$exporter->query_safe('BEGIN ISOLATION LEVEL REPEATABLE READ');
is($exporter->query_safe("SELECT tgt_profile.verify_token('snap', '$tok')"), 't',
	'the token is valid when the snapshot is taken');
my $snapshot = $exporter->query_safe('SELECT pg_export_snapshot()');
like($snapshot, qr/^[0-9A-F-]+$/, 'snapshot exported');

$node->safe_psql('postgres', q{
	SELECT tgt_profile.revoke_tokens('snap');
	SELECT tgt_profile.revoke_approver('snap', 'snap_appr');
});

is($exporter->query_safe("SELECT tgt_profile.verify_token('snap', '$tok')"), 'f',
	'the exporting transaction sees the revocation on its next call');

# A new session importing the old snapshot.
for my $role ('snap_api', 'snap_appr')
{
	my ($out, $state) = psql_state($node, 'postgres', qq{
		BEGIN ISOLATION LEVEL REPEATABLE READ;
		SET TRANSACTION SNAPSHOT '$snapshot';
		SELECT 'old state visible: ' || (SELECT count(*) FROM tgt_profile.token_store
		                                  WHERE client = 'snap' AND revoked_at IS NULL);
		SELECT 'verify: ' || tgt_profile.verify_token('snap', '$tok');
		SELECT status FROM tgt_profile.upsert_profile('snap', '{"a": 1}', 'v1', NULL, 'Bearer $tok');
		COMMIT;
	}) if $role eq 'snap_api';
	if ($role eq 'snap_api')
	{
		like($out, qr/old state visible: 1/, 'the imported snapshot still shows the token unrevoked');
		like($out, qr/verify: false/, 'verify_token under the imported snapshot says false');
		is($state, '28P01', 'upsert_profile under the imported snapshot is refused');
		next;
	}
	($out, $state) = psql_state($node, 'postgres', qq{
		BEGIN ISOLATION LEVEL REPEATABLE READ;
		SET TRANSACTION SNAPSHOT '$snapshot';
		SET ROLE snap_appr;
		SELECT count(*) FROM tgt_profile.generate_token('snap');
		COMMIT;
	});
	is($state, '42501', 'an approver removed since the snapshot cannot generate under it');
}
is($node->safe_psql('postgres', q{SELECT count(*) FROM tgt_profile.profiles WHERE client = 'snap'}),
	'0', 'nothing was written with the revoked token');

$exporter->query_safe('COMMIT');
$exporter->quit;
$node->stop;
done_testing();
