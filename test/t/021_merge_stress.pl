# Identity merges under random concurrency: pgbench clients call, on a
# dozen pcIds and a few customers of one client, merges (upsert_profile
# with merge => true), plain upserts, batches keyed by pcId, deletions by
# pcId and by third-party id, and creations of customers, as fast as they
# can.  Afterwards:
#   - no call failed but with the answers the contract gives to such races
#     (23505 a third-party id taken, 40001 a profile that kept changing):
#     no deadlock, no raw unique violation, no other error;
#   - no pcId is both a profile and an alias, every alias names a profile
#     that has a third-party id (so no alias names another alias).
# The isolation spec identity_merge forces each interleaving it knows of;
# this looks for the ones nobody thought of.
#
# MERGE_STRESS_SECONDS (default 20) and MERGE_STRESS_CLIENTS (default 8).
use strict;
use warnings;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $seconds = $ENV{MERGE_STRESS_SECONDS} // 20;
my $clients = $ENV{MERGE_STRESS_CLIENTS} // 8;

my $node = PostgreSQL::Test::Cluster->new('merge_stress');
$node->init;
$node->append_conf('postgresql.conf', qq{
max_connections = 40
fsync = off
synchronous_commit = off
deadlock_timeout = 100ms
log_lock_waits = on
});
$node->start;

# stress_op(): one random call; an answer the contract gives to a race is
# counted in stress_ok, anything else (a deadlock, a raw unique violation
# naming an index, any other error) recorded in stress_err.
$node->safe_psql('postgres', q{
	SET client_min_messages = warning;
	CREATE EXTENSION tgt_profile CASCADE;
	SELECT tgt_profile.create_client('st');
	CREATE TABLE stress_ok (op text, state text);
	CREATE TABLE stress_err (op text, state text, msg text);
	CREATE FUNCTION stress_op() RETURNS void LANGUAGE plpgsql AS $$
	DECLARE
		r int := (random() * 100)::int;
		k text := 'v' || (1 + (random() * 11)::int);
		c text := 'crm-' || (1 + (random() * 3)::int);
		op text;
		b text;
		d text;
	BEGIN
		BEGIN
			IF r < 40 THEN
				op := 'merge';
				PERFORM tgt_profile.upsert_profile('st', jsonb_build_object('m' || k, r), k, c, merge => true);
			ELSIF r < 58 THEN
				op := 'upsert';
				PERFORM tgt_profile.upsert_profile('st', jsonb_build_object('u' || k, r), k);
			ELSIF r < 73 THEN
				op := 'bulk';
				SELECT string_agg(jsonb_build_object('pcId', 'v' || (1 + (random() * 11)::int), 'b', r)::text, E'\n')
				  INTO b FROM generate_series(1, 5);
				PERFORM tgt_profile.bulk_update('st', b);
			ELSIF r < 82 THEN
				op := 'delete';
				PERFORM tgt_profile.delete_profile('st', k);
			ELSIF r < 93 THEN
				op := 'customer';
				PERFORM tgt_profile.upsert_profile('st', jsonb_build_object('c', r), 'cust-' || c, c);
			ELSE
				op := 'delete_customer';
				PERFORM tgt_profile.delete_profile('st', third_party_id => c);
			END IF;
			INSERT INTO stress_ok VALUES (op, 'ok');
		EXCEPTION
			WHEN unique_violation OR serialization_failure THEN
				IF SQLERRM LIKE 'duplicate key%' THEN
					INSERT INTO stress_err VALUES (op, SQLSTATE, SQLERRM);
				ELSE
					INSERT INTO stress_ok VALUES (op, SQLSTATE);
				END IF;
			WHEN OTHERS THEN
				GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
				INSERT INTO stress_err VALUES (op, SQLSTATE, SQLERRM || coalesce(' (' || d || ')', ''));
		END;
	END
	$$;
});

my $script = "$PostgreSQL::Test::Utils::tmp_check/merge_stress.pgbench";
PostgreSQL::Test::Utils::append_to_file($script, "SELECT stress_op();\n");
my ($out, $err) = ('', '');
my $ok = IPC::Run::run(
	[ 'pgbench', '-n', '-h', $node->host, '-p', $node->port, '-c', $clients, '-j', 2,
		'-T', $seconds, '-f', $script, 'postgres' ],
	'<', \undef, '>', \$out, '2>', \$err);
ok($ok, "pgbench: $clients clients for $seconds s") or diag($err);
my ($calls) = $out =~ /number of transactions actually processed: (\d+)/;
note($out);
cmp_ok($calls // 0, '>', 100, 'the clients made calls (' . ($calls // 0) . ')');
like($out, qr/number of failed transactions: 0 /, 'no call failed outside stress_op');
note($node->safe_psql('postgres',
	q{SELECT string_agg(op || ' ' || state || ' ' || n, ', ' ORDER BY op, state)
		FROM (SELECT op, state, count(*) AS n FROM stress_ok GROUP BY 1, 2) s}));
my $every = q{SELECT count(*) FILTER (WHERE op = '%s' AND state = 'ok') FROM stress_ok};
for my $op (qw(merge upsert bulk delete customer delete_customer))
{
	cmp_ok($node->safe_psql('postgres', sprintf($every, $op)), '>', 0, "some calls of $op succeeded");
}

is($node->safe_psql('postgres', 'SELECT count(*) FROM stress_err'), '0',
	'no deadlock, no raw unique violation, no other error')
  or diag($node->safe_psql('postgres',
	q{SELECT string_agg(format('%s x%s: %s %s', op, n, state, msg), E'\n')
		FROM (SELECT op, state, msg, count(*) AS n FROM stress_err GROUP BY 1, 2, 3 ORDER BY 4 DESC LIMIT 10) e}));

is($node->safe_psql('postgres', q{
	SELECT coalesce(string_agg(a.pc_id, ','), '')
	  FROM tgt_profile.aliases a JOIN tgt_profile.profiles p ON p.client = a.client AND p.tnt_id = a.pc_id}),
	'', 'no pcId is both a profile and an alias');
is($node->safe_psql('postgres', q{
	SELECT coalesce(string_agg(a.pc_id || ' -> ' || a.tnt_id
							   || CASE WHEN p.tnt_id IS NULL THEN ' (no profile)' ELSE ' (no third-party id)' END, ', '), '')
	  FROM tgt_profile.aliases a LEFT JOIN tgt_profile.profiles p ON p.client = a.client AND p.tnt_id = a.tnt_id
	 WHERE p.tnt_id IS NULL OR p.third_party_id IS NULL}),
	'', 'every alias names a profile with a third-party id');

$node->stop;
done_testing();
