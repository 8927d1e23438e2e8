# distribute() when profiles is hash-partitioned by client
# (tgt_profile.profile_partitions at install): Citus distributes the
# partitioned table with its partitions, colocated with settings, and the
# rows move out of the partitions' local heaps.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use lib "$FindBin::RealBin/../t";
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use CitusCluster;
use TgtProfileTest;

# every node: Citus creates the extension on the workers with their setting
my ($coord, @workers) = CitusCluster::start(2, 'tgt_profile.profile_partitions' => 4);
my $db = 'postgres';

$coord->safe_psql($db, q{
	CREATE EXTENSION tgt_profile CASCADE;
	SELECT tgt_profile.create_client('pre');
});
for my $n ($coord, @workers)
{
	is($n->safe_psql($db, q{SELECT count(*) FROM pg_inherits
		WHERE inhparent = 'tgt_profile.profiles'::regclass}), '4',
		'profiles has 4 partitions on ' . $n->name);
}
$coord->safe_psql($db, q{
	SELECT tgt_profile.upsert_profile('pre', format('{"n": "%s"}', i)::jsonb, 'v' || i)
	  FROM generate_series(1, 20) i});

# a table distributed otherwise first (in a colocation group of its own):
# refused, and nothing is left half done
$coord->safe_psql($db, q{SELECT create_distributed_table('tgt_profile.audit_log', 'client',
	colocate_with => 'none', shard_count => 6)});
my ($out, $state, $err) = psql_state($coord, $db, 'SELECT tgt_profile.distribute()');
is($state, '55000', 'a table distributed in another colocation group: 55000');
like($err, qr/table tgt_profile\.audit_log is a Citus table already, but not distributed by client/,
	'... naming the table');
is($coord->safe_psql($db, q{SELECT string_agg(logicalrelid::text, ',') FROM pg_dist_partition
	WHERE logicalrelid::text LIKE 'tgt_profile.%'}), 'tgt_profile.audit_log',
	'... and the tables before it in the order are not distributed');
# Citus cannot undistribute an extension's table: settings joins its group
# instead, and distribute() completes the rest
($out, $state, $err) = psql_state($coord, $db, q{SELECT undistribute_table('tgt_profile.audit_log')});
like($err, qr/cannot alter table because an extension depends on it/,
	'(Citus refuses undistribute_table on an extension\'s table)');
$coord->safe_psql($db, q{SET citus.enable_unsafe_triggers = on;
	SELECT create_distributed_table('tgt_profile.settings', 'client', colocate_with => 'tgt_profile.audit_log')});

($out, $state, $err) = psql_state($coord, $db, 'SELECT tgt_profile.distribute(shard_count => 6)');
is($state, '', 'distribute() with partitioned profiles completes a partial distribution') or diag($err);
like($err, qr/6 tables distributed, 14 functions delegated, 3 local copies emptied/,
	'... distributing the 6 tables left, emptying the 3 shells that held rows');

is($coord->safe_psql($db, q{
	SELECT string_agg(format('%s %s %s', p.logicalrelid::regclass,
							 column_to_column_name(p.logicalrelid, p.partkey),
							 p.colocationid = (SELECT colocationid FROM pg_dist_partition
												WHERE logicalrelid = 'tgt_profile.settings'::regclass)),
					  ', ' ORDER BY p.logicalrelid::regclass::text)
	  FROM pg_dist_partition p WHERE p.logicalrelid::regclass::text LIKE 'tgt_profile.profiles%'}),
	'tgt_profile.profiles client t, tgt_profile.profiles_0 client t, tgt_profile.profiles_1 client t, '
	  . 'tgt_profile.profiles_2 client t, tgt_profile.profiles_3 client t',
	'profiles and its partitions are distributed by client, colocated with settings');
is($coord->safe_psql($db, q{SELECT count(*) FROM pg_dist_shard
	WHERE logicalrelid = 'tgt_profile.profiles_0'::regclass}), '6', 'shard_count reached the partitions');
is($coord->safe_psql($db, "SELECT count(*) FROM tgt_profile.profiles WHERE client = 'pre'"), '20',
	'the 20 profiles are there, through Citus');
for my $n ($coord, @workers)
{
	is($n->safe_psql($db, q{
		SELECT coalesce(string_agg(c.relname || '=' || pg_relation_size(c.oid), ', '), 'empty')
		  FROM pg_class c WHERE c.relnamespace = 'tgt_profile'::regnamespace
		   AND c.relkind IN ('r', 'p') AND pg_relation_size(c.oid) > 0}),
		'empty', 'the shells on ' . $n->name . ' (partitions too) hold no rows');
}
($out, $state, $err) = psql_state($coord, $db, 'SELECT tgt_profile.distribute()');
like($err, qr/already distributed; nothing changed/, 'a second call changes nothing');
($out, $state, $err) = psql_state($coord, $db, 'SELECT tgt_profile.distribute(shard_count => 12)');
like($err, qr/WARNING:  01000: shard_count 12 ignored/, 'a new shard_count is ignored, with a WARNING');

# The storage layer's answer for profiles: the client's hash partition
# (satisfies_hash_partition), then that partition's shard for the client
# (Citus's), on the node that holds it; NULL elsewhere; and the partition
# shards' indexes named <partition's index>_<shardid>.
my @clients = ((map { "c$_" } 1 .. 150), 'zürich', '東京', "o'brien", '', 'x' x 200);
my $array = 'ARRAY[' . join(', ', map { (my $c = $_) =~ s/'/''/g; "'$c'" } @clients) . ']::text[]';
my $compare_sql = qq{
	WITH x AS (
		SELECT c.client, tgt_profile.client_relation('profiles', c.client) AS got,
			   format('tgt_profile.profiles_%s', k.k)::regclass AS leaf
		  FROM unnest($array) c(client),
			   LATERAL (SELECT k FROM generate_series(0, 3) k
						 WHERE satisfies_hash_partition('tgt_profile.profiles'::regclass, 4, k, c.client)) k),
	y AS (
		SELECT x.*, get_shard_id_for_distribution_column(x.leaf, x.client) AS shardid FROM x),
	z AS (
		SELECT y.*, EXISTS (SELECT FROM pg_dist_placement p
							 WHERE p.shardid = y.shardid
							   AND p.groupid = (SELECT groupid FROM pg_dist_local_group)) AS local,
			   to_regclass(shard_name(y.leaf, y.shardid)) AS shard
		  FROM y)
	SELECT concat_ws(' ', count(*),
		count(*) FILTER (WHERE got IS NOT DISTINCT FROM CASE WHEN local THEN shard END),
		count(*) FILTER (WHERE local))
	  FROM z};
my $local_sum = 0;
for my $n ($coord, @workers)
{
	my ($total, $same, $local) = split / /, $n->safe_psql($db, $compare_sql);
	is($total, scalar @clients, scalar(@clients) . ' clients asked on ' . $n->name);
	is($same, $total, 'client_relation(\'profiles\', ...) is the client\'s partition shard where local, NULL elsewhere, on '
		  . $n->name);
	$local_sum += $local;
}
is($local_sum, scalar @clients, 'each client\'s partition shard is local on exactly one node');
for my $w (@workers)
{
	like($w->safe_psql($db, q{
		SET citus.override_table_visibility = off;
		SELECT count(*) FILTER (WHERE i.indrelid IS DISTINCT FROM to_regclass(shard_name(s.leaf, s.shardid)))
			   || '/' || count(*)
		  FROM (SELECT sh.logicalrelid AS leaf, sh.shardid
				  FROM pg_dist_shard sh JOIN pg_dist_placement p USING (shardid)
				 WHERE sh.logicalrelid::text LIKE 'tgt_profile.profiles\_%'
				   AND p.groupid = (SELECT groupid FROM pg_dist_local_group)) s
		  JOIN pg_index pi ON pi.indrelid = s.leaf
		  LEFT JOIN pg_index i
			ON i.indexrelid = to_regclass(format('tgt_profile.%I',
				(SELECT c.relname FROM pg_class c WHERE c.oid = pi.indexrelid) || '_' || s.shardid))}),
		qr{^0/[1-9]}, 'the partition shards on ' . $w->name . ' carry <partition index>_<shardid>');
}

# The profile calls on the partitioned layout, delegated and through the
# coordinator: the rows land in the partition shards (the parent shard of a
# partition shard is the table the direct writer checks), never in a shell.
for my $i (1 .. 6)
{
	my $c = "pc$i";
	my $txn = $i % 2;
	my $sql = qq{
		SELECT tgt_profile.create_client('$c', false);
		SELECT tgt_profile.upsert_profile('$c', '{"a": "1"}', 'p1');
		SELECT tgt_profile.upsert_profile('$c', '{"b": "2"}', 'p1');
		SELECT rows_created, rows_updated, rows_rejected
		  FROM tgt_profile.bulk_update('$c', E'batch=pcId,a\\np1,3\\np2,x\\np3,%ZZ\\n');
		SELECT tgt_profile.get_profile('$c', 'p1') -> 'profile';
		SELECT tgt_profile.delete_profile('$c', 'p2');
		SELECT count(*) FROM tgt_profile.profiles WHERE client = '$c';
	};
	$sql = "BEGIN; $sql COMMIT;" if $txn;
	my ($out, $state, $err) = psql_state($coord, $db, $sql);
	my $route = $txn ? 'through the coordinator' : 'delegated';
	is($state, '', "partitioned, $route: the profile calls of $c") or diag($err);
	like($out, qr/^\n?\(p1,created\)\n\(p1,updated\)\n1\|1\|1\n\{"a": "3", "b": "2"\}\nt\n1$/,
		"partitioned, $route: the same results as on one node") or diag($out);
}

# A login merge on the partitioned layout, on both routes: p1 folded into
# the customer's profile, the alias resolving in get, upsert, a batch and
# delete.
for my $i (1 .. 6)
{
	my $c = "pc$i";
	my $txn = $i % 2;
	my $sql = qq{
		SELECT tgt_profile.upsert_profile('$c', '{"c": "1"}', 'cust', 'crm-1');
		SELECT tgt_profile.upsert_profile('$c', '{"login": "1"}', 'p1', 'crm-1', merge => true);
		SELECT p->>'tntId', p->'aliases' FROM tgt_profile.get_profile('$c', 'p1') p;
		SELECT tgt_profile.upsert_profile('$c', '{"u": "1"}', 'p1');
		SELECT rows_created, rows_updated FROM tgt_profile.bulk_update('$c', E'batch=pcId,d\\np1,4\\n');
		SELECT attributes FROM tgt_profile.profiles WHERE client = '$c' AND tnt_id = 'cust';
		SELECT count(*) FROM tgt_profile.aliases WHERE client = '$c';
		SELECT tgt_profile.delete_profile('$c', 'p1');
		SELECT count(*) FROM tgt_profile.aliases WHERE client = '$c';
	};
	$sql = "BEGIN; $sql COMMIT;" if $txn;
	my ($out, $state, $err) = psql_state($coord, $db, $sql);
	my $route = $txn ? 'through the coordinator' : 'delegated';
	is($state, '', "partitioned, $route: a merge in $c") or diag($err);
	is($out, join("\n", '(cust,created)', '(cust,merged)', 'cust|["p1"]', '(cust,updated)', '0|1',
			'{"a": "3", "b": "2", "c": "1", "d": "4", "u": "1", "login": "1"}', '1', 't', '0'),
		"partitioned, $route: the same results as on one node");
}

for my $n ($coord, @workers)
{
	CitusCluster::shells_empty($n, $db, 'after the calls');
}

done_testing();
