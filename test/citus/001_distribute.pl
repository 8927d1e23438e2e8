# tgt_profile.distribute() on a Citus coordinator with two workers: every
# table distributed by client in one colocation group, shards on the
# workers, rows moved out of the shells, the client-first functions
# delegated; admin only, refused on a worker, idempotent.  Then every public
# call, delegated (a plain statement) and on the coordinator (inside
# BEGIN ... COMMIT), from a worker without the client's shard and on the
# worker with it: each behaves as on one node.
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
	CREATE ROLE ops LOGIN IN ROLE tgt_profile_admin;
	CREATE ROLE appr LOGIN IN ROLE tgt_profile_approver;
	CREATE ROLE api LOGIN IN ROLE tgt_profile_api;
});
for my $w (@workers)
{
	is($w->safe_psql($db, "SELECT extversion FROM pg_extension WHERE extname = 'tgt_profile'"),
		$coord->safe_psql($db, "SELECT extversion FROM pg_extension WHERE extname = 'tgt_profile'"),
		'CREATE EXTENSION on the coordinator reached worker ' . $w->name);
}

# Before distribution the tables are local: the calls work as on one node.
$coord->safe_psql($db, "SELECT tgt_profile.create_client('pre', true)");
my $pre_token = new_token($coord, $db, 'pre');
$coord->safe_psql($db, qq{
	SELECT tgt_profile.grant_approver('pre', 'appr');
	SELECT tgt_profile.upsert_profile('pre', '{"tier": "gold"}', 'v1', 'crm-1', 'Bearer $pre_token');
	SELECT tgt_profile.bulk_update('pre', E'batch=pcId,a\\nv2,x\\nv3,%ZZ\\n', 'Bearer $pre_token');
});
my $counts_sql = q{
	SELECT concat_ws(',', (SELECT count(*) FROM tgt_profile.settings),
		(SELECT count(*) FROM tgt_profile.approvers), (SELECT count(*) FROM tgt_profile.token_store),
		(SELECT count(*) FROM tgt_profile.audit_log), (SELECT count(*) FROM tgt_profile.profiles),
		(SELECT count(*) FROM tgt_profile.batches), (SELECT count(*) FROM tgt_profile.batch_rejects))};
my $counts_before = $coord->safe_psql($db, $counts_sql);
like($counts_before, qr/^1,1,1,\d+,2,1,1$/, "rows before distribution: $counts_before");

# --- who may distribute ---------------------------------------------------
my ($out, $state, $err) = psql_state($coord, $db, 'SELECT tgt_profile.distribute()',
	extra_params => [ '-U', 'api' ]);
is($state, '42501', 'distribute() by an API role: 42501');
($out, $state, $err) = psql_state($coord, $db, 'SELECT tgt_profile.distribute()',
	extra_params => [ '-U', 'appr' ]);
is($state, '42501', 'distribute() by an approver: 42501');
($out, $state, $err) = psql_state($workers[0], $db, 'SELECT tgt_profile.distribute()');
is($state, '0A000', 'distribute() on a worker: 0A000');
like($err, qr/must run on the coordinator/, '... saying to run it on the coordinator');

# --- distribute, as a member of tgt_profile_admin -------------------------
($out, $state, $err) = psql_state($coord, $db, 'SELECT tgt_profile.distribute()',
	extra_params => [ '-U', 'ops' ]);
is($state, '', 'distribute() by a member of tgt_profile_admin') or diag($err);
like($err, qr/8 tables distributed, 14 functions delegated/, '... says what it did');

my $tables = "'settings', 'approvers', 'token_store', 'audit_log', 'profiles', 'aliases', 'batches', 'batch_rejects'";
is($coord->safe_psql($db, qq{
	SELECT string_agg(format('%s %s %s', c.relname, p.partmethod,
							 column_to_column_name(p.logicalrelid, p.partkey)), ', ' ORDER BY c.relname)
	  FROM pg_dist_partition p JOIN pg_class c ON c.oid = p.logicalrelid
	 WHERE c.relnamespace = 'tgt_profile'::regnamespace AND NOT c.relispartition}),
	'aliases h client, approvers h client, audit_log h client, batch_rejects h client, batches h client, '
	  . 'profiles h client, settings h client, token_store h client',
	'every table is hash-distributed by client');
is($coord->safe_psql($db, qq{
	SELECT count(DISTINCT p.colocationid) FROM pg_dist_partition p
	 WHERE p.logicalrelid::regclass::text IN (SELECT 'tgt_profile.' || t FROM unnest(ARRAY[$tables]) t)}),
	'1', '... in one colocation group');
is($coord->safe_psql($db, q{
	SELECT count(*) FROM pg_dist_partition p
	 WHERE p.logicalrelid = 'tgt_profile.settings'::regclass
	   AND p.colocationid = (SELECT colocationid FROM pg_dist_partition
							  WHERE logicalrelid = 'tgt_profile.profiles'::regclass)}),
	'1', '... the one of settings');
is($coord->safe_psql($db, q{
	SELECT string_agg(DISTINCT n.nodeport::text, ',' ORDER BY n.nodeport::text)
	  FROM pg_dist_shard s JOIN pg_dist_placement pl USING (shardid)
	  JOIN pg_dist_node n ON n.groupid = pl.groupid
	 WHERE s.logicalrelid::text LIKE 'tgt_profile.%'}),
	join(',', sort map { $_->port } @workers),
	'shards are placed on both workers, none on the coordinator');
is($coord->safe_psql($db, $counts_sql), $counts_before,
	'the rows are all there, through Citus');

# The shells hold no rows: Citus copies the rows into the shards but leaves
# them in the coordinator's heap, which distribute() truncates.
for my $n (@nodes)
{
	CitusCluster::shells_empty($n, $db);
}

# Facts about Citus's layout that the storage layer must live with: the
# coordinator's shells get an internal TRUNCATE trigger of Citus's (which
# additions.c allows: it is Citus's own), the
# shards on the workers carry our triggers and row-level security policies.
is($coord->safe_psql($db, q{
	SELECT string_agg(DISTINCT t.tgfoid::regproc::text, ',') || ' on ' || count(DISTINCT t.tgrelid)
	  FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
	 WHERE c.relnamespace = 'tgt_profile'::regnamespace AND t.tgisinternal
	   AND t.tgname LIKE 'truncate_trigger%'}),
	'citus_truncate_trigger on 8', 'the coordinator\'s shells carry Citus\'s internal truncate trigger');
is($workers[0]->safe_psql($db, q{
	SET citus.override_table_visibility = off;
	SELECT string_agg(DISTINCT regexp_replace(t.tgname, '_[0-9]+$', ''), ',')
	  FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
	 WHERE c.relnamespace = 'tgt_profile'::regnamespace AND NOT t.tgisinternal
	   AND c.relname ~ '_[0-9]+$'}),
	'settings_changed,settings_guard,token_store_changed', 'the shards carry our triggers');
is($workers[0]->safe_psql($db, q{
	SET citus.override_table_visibility = off;
	SELECT bool_and(c.relrowsecurity) AND bool_and(EXISTS (SELECT FROM pg_policy p WHERE p.polrelid = c.oid))
	  FROM pg_class c
	 WHERE c.relnamespace = 'tgt_profile'::regnamespace AND c.relname ~ '_[0-9]+$' AND c.relkind = 'r'}),
	't', 'the shards have row-level security and its policies');

my $delegated_sql = q{
	SELECT string_agg(o.objid::regprocedure::text, ', ' ORDER BY o.objid::regprocedure::text)
	  FROM pg_dist_object o
	 WHERE o.classid = 'pg_proc'::regclass AND o.distribution_argument_index = 0
	   AND o.colocationid = (SELECT colocationid FROM pg_dist_partition
							  WHERE logicalrelid = 'tgt_profile.settings'::regclass)};
my $delegated = join(', ', sort map { "tgt_profile.$_" } (
	'authorize(text,text)', 'batch_status(text,bigint,text)', 'bulk_update(text,text,text,boolean)',
	'create_client(text,boolean)', 'delete_profile(text,text,text,text)', 'drop_client(text)',
	'generate_token(text,interval,interval)', 'get_profile(text,text,text,text)',
	'grant_approver(text,regrole,text)', 'revoke_approver(text,regrole)', 'revoke_tokens(text)',
	'set_require_auth(text,boolean)', 'upsert_profile(text,jsonb,text,text,text,boolean)',
	'verify_token(text,text)'));
is($coord->safe_psql($db, $delegated_sql), $delegated,
	'the client-first functions are delegated by their first argument, colocated with settings');
is($workers[1]->safe_psql($db, $delegated_sql), $delegated, '... as the workers know too');

($out, $state, $err) = psql_state($coord, $db, 'SELECT tgt_profile.distribute(8)');
is($state, '', 'a second distribute() succeeds');
like($err, qr/already distributed; nothing changed/, '... and says it changed nothing');
like($err, qr/WARNING:  01000: shard_count 8 ignored/, '... warning that the shard count given is ignored');
is($coord->safe_psql($db, q{SELECT count(*) FROM pg_dist_shard
	WHERE logicalrelid = 'tgt_profile.settings'::regclass}),
	$coord->safe_psql($db, 'SHOW citus.shard_count'), '... the shard count is unchanged');

# --- every public call, on both routes ------------------------------------
# The routes: 'delegated' (a plain statement on the coordinator, pushed down
# to the shard's node), 'coordinator' (inside BEGIN ... COMMIT: runs there,
# the shard reached through SQL), 'worker' (a plain statement on the worker
# without the shard: Citus pushes it to the one with it) and 'local' (inside
# BEGIN ... COMMIT on the shard's worker: runs there, on the local shard).
# The node that runs a plain statement of the 'worker' route.
my $via_worker;

# call($route, $sql, %params): ($out, $sqlstate, $err) of $sql as a plain
# statement (delegated by Citus) or inside BEGIN ... COMMIT (run on the
# coordinator, the shard reached through Citus's SQL routing).
sub call
{
	my ($route, $sql, %params) = @_;
	$sql = "BEGIN; $sql; COMMIT" if $route eq 'coordinator' || $route eq 'local';
	my @r = psql_state($route eq 'worker' || $route eq 'local' ? $via_worker : $coord,
		$db, $sql, %params);
	$r[2] =~ s/^(?:LOCATION|CONTEXT|NOTICE|WARNING|DETAIL|HINT):.*\n?//mg;
	return @r;
}

# check($route, $name, $ok, $err): one test, with the error when it fails.
sub check
{
	my ($route, $name, $ok, $err) = @_;
	ok($ok, "$route: $name") or diag("$route $name: " . ($err || '(no error)'));
}

# A plain statement is pushed down to the shard's node; inside a
# transaction block it is not (Citus's DEBUG1 messages say which).
($out, $state, $err) = psql_state($coord, $db,
	"SET client_min_messages = debug1; SELECT tgt_profile.verify_token('pre', 'tgtp_x')");
like($err, qr/pushing down the function call/, 'a plain statement is delegated');
($out, $state, $err) = psql_state($coord, $db,
	"BEGIN; SET LOCAL client_min_messages = debug1; SELECT tgt_profile.verify_token('pre', 'tgtp_x'); COMMIT");
unlike($err, qr/pushing down the function call/, 'a call inside BEGIN ... COMMIT runs on the coordinator');

for my $route ('delegated', 'coordinator', 'worker', 'local')
{
	my $c = { delegated => 'dd', coordinator => 'cc', worker => 'ww', local => 'll' }->{$route};
	if ($route eq 'worker' || $route eq 'local')
	{
		my $port = $coord->safe_psql($db, qq{
			SELECT n.nodeport FROM pg_dist_placement pl JOIN pg_dist_node n USING (groupid)
			 WHERE pl.shardid = get_shard_id_for_distribution_column('tgt_profile.settings', '$c')});
		($via_worker) = grep { ($_->port == $port) == ($route eq 'local') } @workers;
		note("client $c: shard on port $port, calls from " . $via_worker->name);
	}
	my $auth;
	($out, $state, $err) = call($route, "SELECT tgt_profile.create_client('$c')");
	check($route, 'create_client', $state eq '', $err);
	if ($state ne '')
	{
		# the other calls need the client: create it the way that works
		$coord->safe_psql($db, "SELECT tgt_profile.create_client('$c')");
	}
	is($coord->safe_psql($db, "SELECT count(*) FROM tgt_profile.settings WHERE client = '$c'"),
		'1', "$route: the client's settings row is seen through Citus");

	($out, $state, $err) = call($route, "SELECT tgt_profile.set_require_auth('$c', true)");
	check($route, 'set_require_auth', $state eq '', $err);

	($out, $state, $err) = call($route, "SELECT tgt_profile.generate_token('$c')");
	my ($token) = $out =~ /(tgtp_[A-Za-z0-9_-]{48})/;
	check($route, 'generate_token', $state eq '' && defined $token, $err);
	$token //= 'tgtp_none';
	$auth = "'Bearer $token'";

	($out, $state, $err) = call($route, "SELECT tgt_profile.verify_token('$c', '$token')");
	check($route, 'verify_token', $state eq '' && $out eq 't', $err || "returned '$out'");

	($out, $state, $err) = call($route, "SELECT tgt_profile.authorize('$c', $auth)");
	check($route, 'authorize', $state eq '', $err);

	($out, $state, $err) = call($route,
		"SELECT tgt_profile.upsert_profile('$c', '{\"a\": \"1\"}', 'p1', 'crm-1', $auth)");
	check($route, 'upsert_profile', $state eq '' && $out =~ /\(p1,created\)/, $err || "returned '$out'");

	($out, $state, $err) = call($route, "SELECT tgt_profile.get_profile('$c', 'p1', NULL, $auth)");
	check($route, 'get_profile', $state eq '' && $out =~ /"a": "1"/, $err || "returned '$out'");

	($out, $state, $err) = call($route,
		"SELECT tgt_profile.bulk_update('$c', E'batch=pcId,a\\np2,x\\np3,%ZZ\\n', $auth)");
	my ($batch) = $out =~ /^\((\d+),/m;
	check($route, 'bulk_update', $state eq '' && $out =~ /^\(\d+,\w+,2,1,0,0,0,1\)$/m,
		$err || "returned '$out'");
	$batch //= 0;

	($out, $state, $err) = call($route, "SELECT tgt_profile.batch_status('$c', $batch, $auth)");
	check($route, 'batch_status', $state eq '' && $out =~ /"rows_created": 1/, $err || "returned '$out'");

	($out, $state, $err) = call($route, "SELECT tgt_profile.delete_profile('$c', 'p1', NULL, $auth)");
	check($route, 'delete_profile', $state eq '' && $out eq 't', $err || "returned '$out'");

	($out, $state, $err) = call($route, "SELECT tgt_profile.grant_approver('$c', 'appr')");
	check($route, 'grant_approver', $state eq '', $err);

	# row-level security: the approver sees its clients' settings
	($out, $state, $err) = psql_state($coord, $db,
		"SELECT count(*) FROM tgt_profile.settings WHERE client = '$c'",
		extra_params => [ '-U', 'appr' ]);
	check($route, 'approver_sees', $state eq '' && $out eq '1', $err || "sees $out rows");

	($out, $state, $err) = call($route, "SELECT tgt_profile.revoke_approver('$c', 'appr')");
	check($route, 'revoke_approver', $state eq '', $err);

	($out, $state, $err) = call($route, "SELECT tgt_profile.revoke_tokens('$c')");
	check($route, 'revoke_tokens', $state eq '' && $out eq '1', $err || "returned '$out'");

	($out, $state, $err) = call($route, "SELECT tgt_profile.verify_token('$c', '$token')");
	is($state . $out, 'f', "$route: the revoked token fails");

	# the rows distributed from the shells
	($out, $state, $err) = call($route, "SELECT tgt_profile.verify_token('pre', '$pre_token')");
	check($route, 'pre_verify', $state eq '' && $out eq 't', $err || "returned '$out'");
	($out, $state, $err) = call($route,
		"SELECT tgt_profile.get_profile('pre', 'v1', NULL, 'Bearer $pre_token')");
	check($route, 'pre_get_profile', $state eq '' && $out =~ /"tier": "gold"/, $err || "returned '$out'");

	($out, $state, $err) = call($route, "SELECT tgt_profile.purge_expired('$c')");
	check($route, 'purge_expired', $state eq '', $err);
	if ($route eq 'coordinator')
	{
		($out, $state, $err) = call($route, "SELECT tgt_profile.purge_expired()");
		check($route, 'purge_all', $state eq '', $err);
	}

	($out, $state, $err) = call($route, "SELECT tgt_profile.drop_client('$c')");
	check($route, 'drop_client', $state eq '', $err);
}

# Ids need only be unique per client, but a client's rows may be written
# from several nodes (delegated, or through the coordinator): each node's
# token, audit and batch id sequences must draw from a range of its own
# (distribute() sets them: node group g from g * 2^48).
for my $seq ('token_id_seq', 'audit_id_seq', 'batch_id_seq')
{
	my @v = map { $_->safe_psql($db, "SELECT nextval('tgt_profile.$seq')") } @nodes;
	my @sorted = sort { $a <=> $b } @v;
	my $apart = 1;
	for my $i (1 .. $#sorted)
	{
		$apart = 0 if $sorted[$i] - $sorted[ $i - 1 ] < 2**32;
	}
	ok($apart, "$seq: each node draws ids from a range of its own") or diag("nextval per node: @v");
}

# Whatever the calls did, no row landed in a shell.
for my $n (@nodes)
{
	CitusCluster::shells_empty($n, $db, 'after the calls');
}

# delegate => false cannot take a delegation back (Citus refuses it for an
# extension's function): refused, saying to choose it at the first call.
($out, $state, $err) = psql_state($coord, $db, 'SELECT tgt_profile.distribute(delegate => false)');
is($state, '55000', 'distribute(delegate => false) after a delegation: 55000');
like($err, qr/Choose delegate => false at the first call/, '... saying when to choose it');
is($coord->safe_psql($db, $delegated_sql), $delegated, '... and the functions stay delegated');

done_testing();
