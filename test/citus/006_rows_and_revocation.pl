# On a distributed cluster: where the rows land (in the shard relations on
# the workers; every shell stays empty), whichever route wrote them, and a
# revocation or a rotation seen on the next call on every node, also by a
# session whose transaction verified the token before, and by the node
# whose per-backend caches hold the token (DESIGN.md "Authorization is read
# fresh").
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
my @tables = qw(settings approvers token_store audit_log profiles aliases batches batch_rejects);

$coord->safe_psql($db, q{
	CREATE EXTENSION tgt_profile CASCADE;
	CREATE ROLE appr LOGIN IN ROLE tgt_profile_approver;
	SET client_min_messages = warning;
	SELECT tgt_profile.distribute(4);
});

# Every table's rows for a dozen clients, written half by delegated calls,
# half inside transactions on the coordinator (the shard reached by SQL).
my @clients = map { sprintf('c%02d', $_) } 1 .. 12;
for my $i (0 .. $#clients)
{
	my $c = $clients[$i];
	my $sql = qq{
		SELECT tgt_profile.create_client('$c', false);
		SELECT tgt_profile.grant_approver('$c', 'appr');
		SELECT count(*) FROM tgt_profile.generate_token('$c');
		SELECT tgt_profile.upsert_profile('$c', '{"n": "1"}', 'p1');
		SELECT tgt_profile.upsert_profile('$c', '{"n": "2"}', 'p1');
		SELECT tgt_profile.bulk_update('$c', E'batch=pcId,a\\np2,x\\np3,y\\np4,%ZZ\\n');
		SELECT tgt_profile.upsert_profile('$c', '{"m": "1"}', 'p5', 'crm-5');
		SELECT tgt_profile.upsert_profile('$c', '{}', 'p6', 'crm-5', merge => true);
	};
	$sql = "BEGIN; $sql COMMIT;" if $i % 2;
	my ($out, $state, $err) = psql_state($coord, $db, $sql);
	is($state, '', "client $c written " . ($i % 2 ? 'through the coordinator' : 'by delegated calls'))
	  or diag($err);
}

# The rows, counted through Citus, per table.
my %through_citus;
for my $t (@tables)
{
	$through_citus{$t} = $coord->safe_psql($db, "SELECT count(*) FROM tgt_profile.$t");
}
is($through_citus{profiles}, 12 * 4, 'four profiles per client, seen through Citus');
is($through_citus{aliases}, 12, 'one alias per client');
is($through_citus{batch_rejects}, 12, 'one reject per client');

# The shard relations on the workers hold them all.
my %in_shards = map { $_ => 0 } @tables;
for my $w (@workers)
{
	for my $t (@tables)
	{
		my @shards = split /\n/, $w->safe_psql($db, qq{
			SET citus.override_table_visibility = off;
			SELECT c.relname FROM pg_class c
			 WHERE c.relnamespace = 'tgt_profile'::regnamespace AND c.relkind = 'r'
			   AND c.relname ~ '^${t}_[0-9]+\$'});
		for my $s (@shards)
		{
			$in_shards{$t} += $w->safe_psql($db, "SELECT count(*) FROM tgt_profile.$s");
		}
	}
}
for my $t (@tables)
{
	is($in_shards{$t}, $through_citus{$t}, "$t: every row is in a shard relation on a worker");
}

# The shells (the tables in our schema as every node has them) hold none.
for my $n (@nodes)
{
	CitusCluster::shells_empty($n, $db);
}

# --- a revocation, seen on every node ------------------------------------
$coord->safe_psql($db, "SELECT tgt_profile.create_client('rv', true)");
my $port = $coord->safe_psql($db, q{
	SELECT n.nodeport FROM pg_dist_placement pl JOIN pg_dist_node n USING (groupid)
	 WHERE pl.shardid = get_shard_id_for_distribution_column('tgt_profile.settings', 'rv')});
my ($holder) = grep { $_->port == $port } @workers;
my ($other) = grep { $_->port != $port } @workers;
note('client rv: shard on ' . $holder->name);

# One session per node, each verifying inside its own transaction blocks
# (so the call runs on that node: from the local shard and its caches on the
# holder, through SQL elsewhere), and one transaction kept open across the
# revocation.
my %session = map { $_->name => $_->background_psql($db, on_error_stop => 0) } @nodes;

sub verify_everywhere
{
	my ($token, $expect, $what) = @_;
	for my $n (@nodes)
	{
		my $s = $session{ $n->name };
		my $got = session_query($s, "SELECT tgt_profile.verify_token('rv', '$token')");
		is($got, $expect, "$what: verify_token on " . $n->name . " inside its open transaction");
		$got = $n->safe_psql($db, "BEGIN; SELECT tgt_profile.verify_token('rv', '$token'); COMMIT;");
		is($got, $expect, "$what: verify_token on " . $n->name . ' in a new transaction');
		$got = $n->safe_psql($db, "SELECT tgt_profile.verify_token('rv', '$token')");
		is($got, $expect, "$what: verify_token on " . $n->name . ' as a plain (delegated) statement');
	}
}

my $t1 = new_token($coord, $db, 'rv');
for my $n (@nodes)
{
	session_query($session{ $n->name }, '\set VERBOSITY verbose');
	session_query($session{ $n->name }, 'BEGIN ISOLATION LEVEL READ COMMITTED');
}
verify_everywhere($t1, 't', 'a new token');
# a second round: the holder answers from its caches now
verify_everywhere($t1, 't', 'the same token again');

# revoked by a delegated call (runs on the holder)
is($coord->safe_psql($db, "SELECT tgt_profile.revoke_tokens('rv')"), '1', 'revoke_tokens, delegated');
verify_everywhere($t1, 'f', 'after a delegated revocation');

# revoked inside a transaction on the coordinator (the shard reached by SQL)
my $t2 = new_token($coord, $db, 'rv');
verify_everywhere($t2, 't', 'a second token');
is($coord->safe_psql($db, "BEGIN; SELECT tgt_profile.revoke_tokens('rv'); COMMIT;"), '1',
	'revoke_tokens inside a transaction on the coordinator');
verify_everywhere($t2, 'f', 'after a revocation through the coordinator');

# rotated from the worker without the shard: the old token fails at once
my $t3 = new_token($coord, $db, 'rv');
verify_everywhere($t3, 't', 'a third token');
my $t4 = new_token($other, $db, 'rv');
verify_everywhere($t3, 'f', 'the token a rotation on ' . $other->name . ' replaced');
verify_everywhere($t4, 't', 'the token that replaced it');

# under REPEATABLE READ too, on every node
my %rr = map { $_->name => $_->background_psql($db, on_error_stop => 0) } @nodes;
for my $n (@nodes)
{
	session_query($rr{ $n->name }, 'BEGIN ISOLATION LEVEL REPEATABLE READ');
	is(session_query($rr{ $n->name }, "SELECT tgt_profile.verify_token('rv', '$t4')"), 't',
		'repeatable read on ' . $n->name . ': the token is valid');
}
$coord->safe_psql($db, "SELECT tgt_profile.revoke_tokens('rv')");
# The holder reads its local shard under a fresh snapshot, as one node
# does; a node without the shard has the read done on the holder, by a
# statement Citus routes there (remote.c), under a fresh snapshot too.
for my $n (@nodes)
{
	is(session_query($rr{ $n->name }, "SELECT tgt_profile.verify_token('rv', '$t4')"), 'f',
		'repeatable read on ' . $n->name . ': the revoked token fails in the same transaction');
	session_query($rr{ $n->name }, 'COMMIT');
	is(session_query($rr{ $n->name }, "BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT tgt_profile.verify_token('rv', '$t4')"),
		'f', 'repeatable read on ' . $n->name . ': the revoked token fails in the next transaction');
}
$_->quit for values %rr;

# a require_auth change is seen on every node too (the settings cache)
$coord->safe_psql($db, "BEGIN; SELECT tgt_profile.set_require_auth('rv', false); COMMIT;");
for my $n (@nodes)
{
	my ($out, $state) = session_query($session{ $n->name },
		"SELECT tgt_profile.authorize('rv', NULL)");
	is($state, '', 'require_auth switched off is seen on ' . $n->name . ' inside its open transaction');
}
$coord->safe_psql($db, "SELECT tgt_profile.set_require_auth('rv', true)");
for my $n (@nodes)
{
	my ($out, $state) = session_query($session{ $n->name },
		"SELECT tgt_profile.authorize('rv', NULL)");
	is($state, '28000', 'require_auth switched on is seen on ' . $n->name . ' inside its open transaction');
}

$_->quit for values %session;
# A node added later (README "Scaling out with Citus", step 4): Citus
# creates the extension there, and distribute() called again gives it its
# own range of ids.
my $w3 = CitusCluster::add_worker($coord, 'worker3');
my ($out, $state, $err) = psql_state($coord, $db, 'SELECT tgt_profile.distribute()');
is($state, '', 'distribute() again after a node was added') or diag($err);
my $group = $w3->safe_psql($db, 'SELECT groupid FROM pg_dist_local_group');
for my $seq ('token_id_seq', 'audit_id_seq', 'batch_id_seq')
{
	my $v = $w3->safe_psql($db, "SELECT nextval('tgt_profile.$seq')");
	is($v, ($group << 48) + 1, "$seq on the new node starts its own range (group $group)");
}

done_testing();
