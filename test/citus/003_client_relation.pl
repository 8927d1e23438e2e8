# tgt_profile.client_relation(tbl, client), the storage layer's answer to
# "which relation holds this client's rows on this node", against Citus's
# own: for ~200 clients (non-ASCII and long codes too) and every table, on
# every node, it is the client's shard (get_shard_id_for_distribution_column,
# shard_name) where the node holds that shard's placement, and NULL
# elsewhere.  The shards' indexes are named as the storage layer expects.
# An open session follows a shard move (its cache is invalidated).
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

my ($coord, @workers) = CitusCluster::start(2);
my @nodes = ($coord, @workers);
my $db = 'postgres';

$coord->safe_psql($db, q{
	CREATE EXTENSION tgt_profile CASCADE;
	SELECT tgt_profile.create_client('pre');
});
# before distribution: the tables themselves, on every node
for my $n (@nodes)
{
	is($n->safe_psql($db, q{SELECT tgt_profile.client_relation('settings', 'pre')}),
		'tgt_profile.settings', 'before distribute(): the table itself on ' . $n->name);
}
# sessions open across distribute(): their cached answers follow it
my @early = map { $_->background_psql($db) } @nodes;
my $ask_pre = q{SELECT coalesce(tgt_profile.client_relation('settings', 'pre')::text, 'NULL')};
is($_->query_safe($ask_pre), 'tgt_profile.settings', 'an open session asks before distribute()') for @early;
my ($out, $state, $err) = psql_state($coord, $db,
	'SELECT tgt_profile.distribute(shard_count => 8, delegate => false)');
is($state, '', 'distribute(shard_count => 8, delegate => false)') or diag($err);
like($err, qr/8 tables distributed, 0 functions delegated/, '... delegating no function');
for my $i (0 .. $#nodes)
{
	is($early[$i]->query_safe($ask_pre), $nodes[$i]->safe_psql($db, $ask_pre),
		'after distribute(), the session opened before it on ' . $nodes[$i]->name . ' answers as a new one');
}
like(join(' ', map { $_->safe_psql($db, $ask_pre) } @nodes), qr/^NULL (NULL tgt_profile\.settings_\d+|tgt_profile\.settings_\d+ NULL)$/,
	'... which is the shard on one worker, NULL on the other nodes');
$_->quit for @early;

# ~200 client codes: plain, non-ASCII (bytes of UTF-8), long, odd
my @clients = map { "c$_" } 1 .. 120;
push @clients, map { "client-$_-x" } 1 .. 30;
push @clients, ('zürich', 'Zürich', '東京', 'ñandú', 'Ελλάδα', 'москва', 'عربي', '😀',
	'naïve-café', "o'brien", 'a b', '', ' ', 'UPPER', '0', '-');
push @clients, map { "ü$_" } 1 .. 29;
push @clients, ('x' x 64, 'y' x 65, 'é' x 300, 'k' x 2000, '東' x 100);
my $n_clients = scalar @clients;
note('server_encoding ' . $coord->safe_psql($db, 'SHOW server_encoding')
	  . ': the codes are hashed as the bytes the server stores');
my $array = 'ARRAY[' . join(', ', map { (my $c = $_) =~ s/'/''/g; "'$c'" } @clients) . ']::text[]';
my $tables = q{'settings', 'approvers', 'token_store', 'audit_log', 'profiles', 'aliases', 'batches', 'batch_rejects'};

# per (client, table): the storage layer's answer, and Citus's
my $compare_sql = qq{
	WITH x AS (
		SELECT c.client, t.tbl,
			   tgt_profile.client_relation(t.tbl, c.client) AS got,
			   pg_catalog.get_shard_id_for_distribution_column(
				   pg_catalog.format('tgt_profile.%I', t.tbl)::regclass, c.client) AS shardid
		  FROM unnest($array) c(client), unnest(ARRAY[$tables]) t(tbl)),
	y AS (
		SELECT x.*,
			   EXISTS (SELECT FROM pg_dist_placement p
						WHERE p.shardid = x.shardid
						  AND p.groupid = (SELECT groupid FROM pg_dist_local_group)) AS local,
			   to_regclass(shard_name(pg_catalog.format('tgt_profile.%I', x.tbl)::regclass, x.shardid)) AS shard
		  FROM x)
};
my %local_per_node;
for my $n (@nodes)
{
	my $r = $n->safe_psql($db, $compare_sql . q{
		SELECT concat_ws(' ', count(*),
			count(*) FILTER (WHERE got IS NOT DISTINCT FROM CASE WHEN local THEN shard END),
			count(*) FILTER (WHERE local), count(*) FILTER (WHERE local AND shard IS NULL))
		  FROM y});
	my ($total, $same, $local, $missing) = split / /, $r;
	is($total, $n_clients * 8, "$n_clients clients x 8 tables asked on " . $n->name);
	is($same, $total, 'client_relation() is Citus\'s shard where local, NULL elsewhere, on ' . $n->name)
	  or diag($n->safe_psql($db, $compare_sql . q{
		SELECT string_agg(format('%s/%s: got %s, Citus %s (local %s)', left(client, 20), tbl,
								 got, shard, local), E'\n')
		  FROM (SELECT * FROM y WHERE got IS DISTINCT FROM CASE WHEN local THEN shard END LIMIT 10) z}));
	is($missing, '0', 'every shard placed on ' . $n->name . ' exists there');
	$local_per_node{ $n->name } = $local;
	note($n->name . ": $local of $total (client, table) pairs local");
}
is($local_per_node{coord}, '0', 'the coordinator holds no shard: NULL for every client');
ok($local_per_node{worker1} > 0 && $local_per_node{worker2} > 0, 'both workers hold some clients\' shards');
is($local_per_node{worker1} + $local_per_node{worker2}, $n_clients * 8,
	'each (client, table) is local on exactly one worker');
# the same answers from a second call in one session (the cache)
is($workers[0]->safe_psql($db, qq{
	SELECT count(*) FROM unnest($array) c(client), unnest(ARRAY[$tables]) t(tbl)
	 WHERE tgt_profile.client_relation(t.tbl, c.client) IS DISTINCT FROM
		   tgt_profile.client_relation(t.tbl, c.client)}), '0',
	'a second call in the same statement gives the same answers');

# The shards' indexes are named <index>_<shardid>, the names tp_client_index
# looks up.
for my $w (@workers)
{
	is($w->safe_psql($db, q{
		SET citus.override_table_visibility = off;
		SELECT count(*) FILTER (WHERE i.indrelid IS DISTINCT FROM s.shard)
		  FROM (SELECT to_regclass(shard_name('tgt_profile.profiles', sh.shardid)) AS shard, sh.shardid
				  FROM pg_dist_shard sh JOIN pg_dist_placement p USING (shardid)
				 WHERE sh.logicalrelid = 'tgt_profile.profiles'::regclass
				   AND p.groupid = (SELECT groupid FROM pg_dist_local_group)) s
		 CROSS JOIN unnest(ARRAY['profiles_pkey', 'profiles_third_party_id_key']) ix(name)
		  LEFT JOIN pg_index i
			ON i.indexrelid = to_regclass(format('tgt_profile.%I', ix.name || '_' || s.shardid))}),
		'0', 'the profiles shards on ' . $w->name . ' carry profiles_pkey_<shardid> and profiles_third_party_id_key_<shardid>');
}

# An open session on each worker follows a shard move: Citus invalidates the
# relcache entry of the distributed table, and the cache goes with it.
my $client = $coord->safe_psql($db, qq{
	SELECT c FROM unnest($array) c
	 WHERE c ~ '^c[0-9]+\$' AND (SELECT n.nodeport FROM pg_dist_placement p JOIN pg_dist_node n USING (groupid)
				   WHERE p.shardid = get_shard_id_for_distribution_column('tgt_profile.settings', c))
		   = } . $workers[0]->port . q{ LIMIT 1});
my $shardid = $coord->safe_psql($db,
	"SELECT get_shard_id_for_distribution_column('tgt_profile.settings', '$client')");
my @bg = map { $_->background_psql($db) } @workers;
my $ask = "SELECT coalesce(tgt_profile.client_relation('settings', '$client')::text, 'NULL')";
is($bg[0]->query_safe($ask), "tgt_profile.settings_$shardid", "client $client: its shard on worker1 (open session)");
is($bg[1]->query_safe($ask), 'NULL', '... NULL on worker2 (open session)');
($out, $state, $err) = psql_state($coord, $db, qq{
	SELECT citus_move_shard_placement($shardid, '127.0.0.1', } . $workers[0]->port
	  . q{, '127.0.0.1', } . $workers[1]->port . q{, shard_transfer_mode => 'block_writes')});
is($state, '', 'the shard group moved to worker2') or diag($err);
is($bg[0]->query_safe($ask), 'NULL', 'worker1\'s open session: NULL now');
is($bg[1]->query_safe($ask), "tgt_profile.settings_$shardid", 'worker2\'s open session: the shard now');
$_->quit for @bg;
for my $n (@nodes)
{
	is($n->safe_psql($db, $compare_sql . q{
		SELECT count(*) FILTER (WHERE got IS DISTINCT FROM CASE WHEN local THEN shard END) FROM y}),
		'0', 'after the move, every answer on ' . $n->name . ' is still Citus\'s');
}

# Undelegated, every call runs where it is sent: a plain statement too, and
# a NULL client gets its usual answer (delegated, Citus 13.2.2 would crash
# planning it: README).
$coord->safe_psql($db, "SELECT tgt_profile.create_client('nd', true)");
my $nd_token = new_token($coord, $db, 'nd');
($out, $state, $err) = psql_state($coord, $db,
	"SET client_min_messages = debug1; SELECT tgt_profile.verify_token('nd', '$nd_token')");
is($out, 't', 'undelegated: a plain verify_token works');
unlike($err, qr/pushing down the function call/, '... and runs on the coordinator');
($out, $state, $err) = psql_state($coord, $db, 'SELECT tgt_profile.create_client(NULL)');
is($state, '22023', 'undelegated: create_client(NULL) gets its usual 22023') or diag($err);
is($coord->safe_psql($db, "SELECT tgt_profile.verify_token(NULL, 'x')"), 'f',
	'undelegated: verify_token(NULL, ...) is false');
is($coord->safe_psql($db, 'SELECT 1'), '1', 'the coordinator is up');

done_testing();
