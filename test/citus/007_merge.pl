# Identity merge (upsert_profile with merge => true, issue 12) on a Citus
# coordinator with two workers: aliases distributed by client with the
# other tables, and on every route (delegated, on the coordinator inside
# BEGIN ... COMMIT, from a worker without the client's shard, inside
# BEGIN ... COMMIT there, and on the shard's worker) the merge's result,
# the alias resolving through get_profile, upsert_profile, bulk_update and
# delete_profile, the alias rows in the client's shard of aliases (never in
# a shell), purge_expired and drop_client removing them, every merge
# audited.  Each answer is the one a single node gives (sql/identity_merge.sql).
# Then 10 seconds of random concurrent merges, upserts, batches and
# deletions through the coordinator (MERGE_STRESS_SECONDS).
use strict;
use warnings;
use FindBin;
use IPC::Run;
use lib $FindBin::RealBin;
use lib "$FindBin::RealBin/../t";
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use CitusCluster;
use TgtProfileTest;

my ($coord, @workers) = CitusCluster::start(2);
my @nodes = ($coord, @workers);
my $db = 'postgres';

$coord->safe_psql($db, q{
	CREATE EXTENSION tgt_profile CASCADE;
	SET client_min_messages = warning;
	SELECT tgt_profile.distribute(4);
});

is($coord->safe_psql($db, q{
	SELECT format('%s %s %s', p.partmethod, column_to_column_name(p.logicalrelid, p.partkey),
				  p.colocationid = (SELECT colocationid FROM pg_dist_partition
									 WHERE logicalrelid = 'tgt_profile.settings'::regclass))
	  FROM pg_dist_partition p WHERE p.logicalrelid = 'tgt_profile.aliases'::regclass}),
	'h client t', 'aliases is hash-distributed by client, colocated with settings');
is($coord->safe_psql($db, q{
	SELECT count(*) FROM pg_dist_object o
	 WHERE o.objid = 'tgt_profile.upsert_profile(text, jsonb, text, text, text, boolean)'::regprocedure
	   AND o.distribution_argument_index = 0}),
	'1', 'upsert_profile with merge is delegated by its client');

# The node holding client $c's shards, and a worker without them.
sub holder
{
	my ($c) = @_;
	my $port = $coord->safe_psql($db, qq{
		SELECT n.nodeport FROM pg_dist_placement pl JOIN pg_dist_node n USING (groupid)
		 WHERE pl.shardid = get_shard_id_for_distribution_column('tgt_profile.settings', '$c')});
	my ($with) = grep { $_->port == $port } @workers;
	my ($without) = grep { $_->port != $port } @workers;
	return ($with, $without);
}

# The routes: 'delegated' (a plain statement on the coordinator, pushed
# down to the shard's node), 'coordinator' (inside BEGIN ... COMMIT there:
# the shard reached through SQL), 'worker' (a plain statement on the worker
# without the shard: pushed down from there), 'worker-txn' (inside
# BEGIN ... COMMIT on that worker: the shard reached through SQL from a
# worker) and 'local' (inside BEGIN ... COMMIT on the shard's worker: the
# local shard).
my @routes = qw(delegated coordinator worker worker-txn local);
# 10,000 records of new keys, then two more (the chunk after them is written
# without reading its keys first), the last of the alias p
my $big_batch = join("\n", (map { qq({"pcId": "n-$_", "f": $_}) } 1 .. 10000),
	'{"pcId": "n2", "f": 1}', '{"pcId": "p", "fast": "1"}');

# A plain statement of each form used below is delegated (Citus's DEBUG1
# says so); a call with a named argument too, and the forms of the steps of
# specs/identity_merge.spec (the function in FROM, an argument an
# expression).
for my $form ("SELECT tgt_profile.upsert_profile('x', '{}', 'p', 'crm-x', NULL, true)",
	"SELECT tgt_profile.upsert_profile('x', '{}', 'p', 'crm-x', merge => true)",
	"SELECT tgt_profile.get_profile('x', 'p')",
	"SELECT tnt_id, status FROM tgt_profile.upsert_profile('x', jsonb_build_object('a', 1), 'p', 'crm-x', merge => true)",
	"SELECT tgt_profile.delete_profile('x', 'p')",
	"SELECT tgt_profile.bulk_update('x', E'batch=pcId,a\\np,1\\n')")
{
	my ($out, $state, $err) = psql_state($coord, $db, "SET client_min_messages = debug1; $form");
	like($err, qr/pushing down the function call/, "delegated: $form");
}
my %node_of;

# call($route, $sql): ($out, $sqlstate, $err) of $sql on that route.
sub call
{
	my ($route, $sql) = @_;
	$sql = "BEGIN; $sql; COMMIT" if $route ne 'delegated' && $route ne 'worker';
	my @r = psql_state($node_of{$route}, $db, $sql);
	$r[2] =~ s/^(?:LOCATION|CONTEXT|NOTICE|WARNING|DETAIL|HINT):.*\n?//mg;
	return @r;
}

# check($route, $name, $ok, $err): one test, with the error when it fails.
sub check
{
	my ($route, $name, $ok, $err) = @_;
	ok($ok, "$route: $name") or diag("$route $name: " . ($err || '(no error)'));
}

# The client's aliases as "pc_id>tnt_id,...", through Citus.
sub aliases_of
{
	my ($c) = @_;
	return $coord->safe_psql($db, qq{
		SELECT coalesce(string_agg(pc_id || '>' || tnt_id, ',' ORDER BY pc_id), '')
		  FROM tgt_profile.aliases WHERE client = '$c'});
}

for my $route (@routes)
{
	(my $c = "m-$route") =~ s/[^a-z-]//g;
	my ($with, $without) = holder($c);
	%node_of = (delegated => $coord, coordinator => $coord, worker => $without,
		'worker-txn' => $without, local => $with);
	note("client $c: shard on " . $with->name . ', calls from ' . $node_of{$route}->name);

	$coord->safe_psql($db, qq{
		SELECT tgt_profile.create_client('$c');
		SELECT count(*) FROM tgt_profile.upsert_profile('$c', '{"tier": "gold", "both": "q"}', 'q', 'crm-q');
		SELECT count(*) FROM tgt_profile.upsert_profile('$c', '{"cart": "3", "both": "p"}', 'p');
		SELECT count(*) FROM tgt_profile.upsert_profile('$c', '{"other": "1"}', 'r', 'crm-r');
	});

	my ($out, $state, $err) = call($route,
		"SELECT tgt_profile.upsert_profile('$c', '{\"login\": \"1\"}', 'p', 'crm-q', merge => false)");
	check($route, 'without merge: 23505', $state eq '23505', $err || "returned '$out'");

	($out, $state, $err) = call($route,
		"SELECT tgt_profile.upsert_profile('$c', '{\"login\": \"1\"}', 'p', 'crm-q', NULL, true)");
	check($route, 'merge', $state eq '' && $out eq '(q,merged)', $err || "returned '$out'");
	is(aliases_of($c), 'p>q', "$route: p is an alias of q");
	is($coord->safe_psql($db, "SELECT count(*) FROM tgt_profile.profiles WHERE client = '$c' AND tnt_id = 'p'"),
		'0', "$route: p's row is gone");

	($out, $state, $err) = call($route,
		"SELECT tgt_profile.get_profile('$c', 'p')");
	check($route, 'get_profile through the alias',
		$state eq '' && $out =~ /^\{"tntId": "q", "aliases": \["p"\], "profile": \{"both": "q", "cart": "3", "tier": "gold", "login": "1"\}, /,
		$err || "returned '$out'");

	($out, $state, $err) = call($route,
		"SELECT tgt_profile.upsert_profile('$c', '{\"u\": \"1\"}', 'p')");
	check($route, 'upsert_profile through the alias', $state eq '' && $out eq '(q,updated)',
		$err || "returned '$out'");

	($out, $state, $err) = call($route,
		"SELECT tgt_profile.bulk_update('$c', E'batch=pcId,b\\np,1\\nq,\\n')");
	check($route, 'bulk_update through the alias', $state eq '' && $out =~ /^\(\d+,complete,2,0,1,1,0,0\)$/,
		$err || "returned '$out'");

	# a chunk of 10,000 new keys, then one written without reading its keys
	# first: its alias still resolves
	($out, $state, $err) = call($route, "SELECT tgt_profile.bulk_update('$c', '$big_batch')");
	check($route, 'bulk_update through the alias in a second chunk',
		$state eq '' && $out =~ /^\(\d+,complete,10002,10001,1,0,0,0\)$/, $err || "returned '$out'");
	$coord->safe_psql($db, "DELETE FROM tgt_profile.profiles WHERE client = '$c' AND tnt_id LIKE 'n%'");
	$coord->safe_psql($db, qq{UPDATE tgt_profile.profiles SET attributes = attributes - 'fast'
		WHERE client = '$c' AND tnt_id = 'q'});

	($out, $state, $err) = call($route,
		"SELECT tgt_profile.upsert_profile('$c', '{}', 'p-new', 'crm-q', merge => true)");
	check($route, 'a new pcId merged: an alias directly', $state eq '' && $out eq '(q,merged)',
		$err || "returned '$out'");

	($out, $state, $err) = call($route,
		"SELECT tgt_profile.upsert_profile('$c', '{\"x\": \"1\"}', 'p', 'crm-r', merge => true)");
	check($route, 'an alias merged into another customer: 23505', $state eq '23505',
		$err || "returned '$out'");

	is($coord->safe_psql($db, "SELECT attributes FROM tgt_profile.profiles WHERE client = '$c' AND tnt_id = 'q'"),
		'{"b": "1", "u": "1", "both": "q", "cart": "3", "tier": "gold", "login": "1"}',
		"$route: q holds what every call wrote");
	is(aliases_of($c), 'p>q,p-new>q', "$route: both aliases of q");

	# the alias rows are in the client's shard of aliases, on its worker
	my $shard = $coord->safe_psql($db, qq{
		SELECT shard_name('tgt_profile.aliases'::regclass,
						  get_shard_id_for_distribution_column('tgt_profile.aliases', '$c'))});
	is($with->safe_psql($db, qq{
		SET citus.override_table_visibility = off;
		SELECT count(*) FROM $shard WHERE client = '$c'}), '2',
		"$route: the alias rows are in $shard on " . $with->name);
	is($with->safe_psql($db, "SELECT tgt_profile.client_relation('aliases', '$c')"), $shard,
		"$route: client_relation('aliases') names that shard on its worker");

	is($coord->safe_psql($db, qq{
		SELECT string_agg(detail->>'pcId' || '>' || (detail->>'tntId') || ' ' || (detail->>'thirdPartyId'), ','
						  ORDER BY id)
		  FROM tgt_profile.audit_log WHERE client = '$c' AND action = 'merge_profiles'}),
		'p>q crm-q,p-new>q crm-q', "$route: both merges audited");

	($out, $state, $err) = call($route, "SELECT tgt_profile.delete_profile('$c', 'p-new')");
	check($route, 'delete_profile through the alias', $state eq '' && $out eq 't', $err || "returned '$out'");
	is(aliases_of($c), '', "$route: the customer's aliases deleted with it");
	is($coord->safe_psql($db, "SELECT count(*) FROM tgt_profile.profiles WHERE client = '$c' AND tnt_id = 'q'"),
		'0', "$route: the customer deleted");

	# purge_expired removes a profile's aliases with it
	$coord->safe_psql($db, qq{
		SELECT count(*) FROM tgt_profile.upsert_profile('$c', '{}', 'q', 'crm-q');
		SELECT count(*) FROM tgt_profile.upsert_profile('$c', '{}', 'p', 'crm-q', merge => true);
		SELECT count(*) FROM tgt_profile.upsert_profile('$c', '{}', 'r-anon', 'crm-r', merge => true);
		UPDATE tgt_profile.profiles SET last_seen_at = now() - interval '400 days'
		 WHERE client = '$c' AND tnt_id = 'q';
	});
	is(aliases_of($c), 'p>q,r-anon>r', "$route: aliases again before the purge");
	($out, $state, $err) = call($route, "SELECT tgt_profile.purge_expired('$c')");
	check($route, 'purge_expired', $state eq '' && $out eq '1', $err || "returned '$out'");
	is(aliases_of($c), 'r-anon>r', "$route: the purged profile's alias is gone, the other kept");

	($out, $state, $err) = call($route, "SELECT tgt_profile.drop_client('$c')");
	check($route, 'drop_client', $state eq '', $err);
	is(aliases_of($c), '', "$route: drop_client removed the client's aliases");
}

# purge_expired() of every client, on the coordinator: aliases go too
$coord->safe_psql($db, q{
	SELECT tgt_profile.create_client('m-all');
	SELECT count(*) FROM tgt_profile.upsert_profile('m-all', '{}', 'q', 'crm-q');
	SELECT count(*) FROM tgt_profile.upsert_profile('m-all', '{}', 'p', 'crm-q', merge => true);
	UPDATE tgt_profile.profiles SET last_seen_at = now() - interval '400 days' WHERE client = 'm-all';
});
is(aliases_of('m-all'), 'p>q', 'm-all: an alias before purge_expired()');
my ($out, $state, $err) = psql_state($coord, $db, 'SELECT tgt_profile.purge_expired()');
is($state, '', 'purge_expired() of every client') or diag($err);
is(aliases_of('m-all'), '', '... removed the alias with its profile');

# Random concurrent merges, upserts, batches and deletions (as
# test/t/021_merge_stress.pl on one node), through the coordinator: called
# from a function, Citus delegates nothing, every call reaches the shard
# through SQL, in subtransactions.  No deadlock, no error but 23505 and
# 40001, no pcId both a profile and an alias, no alias without its profile.
my $stress_seconds = $ENV{MERGE_STRESS_SECONDS} // 10;
$coord->safe_psql($db, q{
	SELECT tgt_profile.create_client('m-stress');
	CREATE TABLE stress_err (op text, state text, msg text);
	CREATE FUNCTION stress_op() RETURNS void LANGUAGE plpgsql AS $$
	DECLARE
		r int := (random() * 100)::int;
		k text := 'v' || (1 + (random() * 7)::int);
		c text := 'crm-' || (1 + (random() * 2)::int);
		op text;
		b text;
	BEGIN
		BEGIN
			IF r < 40 THEN
				op := 'merge';
				PERFORM tgt_profile.upsert_profile('m-stress', jsonb_build_object('m' || k, r), k, c, merge => true);
			ELSIF r < 58 THEN
				op := 'upsert';
				PERFORM tgt_profile.upsert_profile('m-stress', jsonb_build_object('u' || k, r), k);
			ELSIF r < 73 THEN
				op := 'bulk';
				SELECT string_agg(jsonb_build_object('pcId', 'v' || (1 + (random() * 7)::int), 'b', r)::text, E'\n')
				  INTO b FROM generate_series(1, 4);
				PERFORM tgt_profile.bulk_update('m-stress', b);
			ELSIF r < 82 THEN
				op := 'delete';
				PERFORM tgt_profile.delete_profile('m-stress', k);
			ELSIF r < 93 THEN
				op := 'customer';
				PERFORM tgt_profile.upsert_profile('m-stress', jsonb_build_object('c', r), 'cust-' || c, c);
			ELSE
				op := 'delete_customer';
				PERFORM tgt_profile.delete_profile('m-stress', third_party_id => c);
			END IF;
		EXCEPTION
			WHEN unique_violation OR serialization_failure THEN
				IF SQLERRM LIKE 'duplicate key%' THEN
					INSERT INTO stress_err VALUES (op, SQLSTATE, SQLERRM);
				END IF;
			WHEN OTHERS THEN
				INSERT INTO stress_err VALUES (op, SQLSTATE, SQLERRM);
		END;
	END
	$$;
});
my $script = "$PostgreSQL::Test::Utils::tmp_check/merge_stress.pgbench";
PostgreSQL::Test::Utils::append_to_file($script, "SELECT stress_op();\n");
my ($bench_out, $bench_err) = ('', '');
my $bench_ok = IPC::Run::run(
	[ 'pgbench', '-n', '-h', $coord->host, '-p', $coord->port, '-c', 6, '-j', 2,
		'-T', $stress_seconds, '-f', $script, $db ],
	'<', \undef, '>', \$bench_out, '2>', \$bench_err);
ok($bench_ok, "stress through the coordinator: pgbench for $stress_seconds s") or diag($bench_err);
my ($stress_calls) = $bench_out =~ /number of transactions actually processed: (\d+)/;
cmp_ok($stress_calls // 0, '>', 50, 'stress: the clients made calls (' . ($stress_calls // 0) . ')');
my $spi_count = q{msg LIKE 'consistency check on SPI tuple count failed%'};
is($coord->safe_psql($db, "SELECT count(*) FROM stress_err WHERE NOT ($spi_count)"), '0',
	'stress: no deadlock, no raw or other error')
  or diag($coord->safe_psql($db, q{SELECT string_agg(format('%s x%s: %s %s', op, n, state, msg), E'\n')
	FROM (SELECT op, state, msg, count(*) AS n FROM stress_err GROUP BY 1, 2, 3 ORDER BY 4 DESC LIMIT 10) e}));
TODO:
{
	# Found by this stress test and not yet understood (issue 12's closing
	# note, README "Scaling out with Citus"): the batch fails whole, applies
	# nothing and can be retried.
	local $TODO = 'open: a coordinator-routed batch among concurrent merges sometimes fails with XX000 '
	  . '"consistency check on SPI tuple count failed" (SPI under Citus, cf. citusdata/citus#2743)';
	is($coord->safe_psql($db, "SELECT count(*) FROM stress_err WHERE $spi_count"), '0',
		'stress: no batch fails with XX000');
}
is($coord->safe_psql($db, q{
	SELECT count(*) FROM tgt_profile.aliases a JOIN tgt_profile.profiles p ON p.client = a.client AND p.tnt_id = a.pc_id
	 WHERE a.client = 'm-stress'}), '0', 'stress: no pcId is both a profile and an alias');
is($coord->safe_psql($db, q{
	SELECT count(*) FROM tgt_profile.aliases a
	  LEFT JOIN tgt_profile.profiles p ON p.client = a.client AND p.tnt_id = a.tnt_id
	 WHERE a.client = 'm-stress' AND (p.tnt_id IS NULL OR p.third_party_id IS NULL)}),
	'0', 'stress: every alias names a profile with a third-party id');

# Whatever the calls did, no row landed in a shell.
CitusCluster::shells_empty($_, $db, 'after the merges') for @nodes;

done_testing();
