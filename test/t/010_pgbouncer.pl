# Through pgbouncer in transaction pooling with one server connection
# (default_pool_size = 1, max_db_connections = 1, loopback only), two
# application clients A and B — one login role, two tgt_profile clients that
# require authentication, two tokens — interleave on the same backend and
# never act with each other's authorization: a token of the other client is
# 28P01, a transaction-local request.headers ends with the transaction, an
# explicit authorization argument is never replaced by anything left in the
# session.  The whole profile API is exercised in the simple protocol (psql)
# and the extended protocol (pgbench -M extended and -M prepared).
#
# Documented hazard (pgbouncer, not the extension): a session-level
# SET request.headers stays on the server connection, and the next client's
# transaction on it sees it.  Hence: pass the header as the authorization
# argument (a bind parameter), or set request.headers with set_config(..., true)
# inside the transaction, as PostgREST does.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use TgtProfileTest;

my $node = PostgreSQL::Test::Cluster->new('pool');
$node->init;
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION tgt_profile CASCADE;
	CREATE ROLE backend LOGIN IN ROLE tgt_profile_api;
	SELECT tgt_profile.create_client('alpha', require_auth => true);
	SELECT tgt_profile.create_client('beta', require_auth => true);
});
my $ta = new_token($node, 'postgres', 'alpha');
my $tb = new_token($node, 'postgres', 'beta');

# --- pgbouncer: transaction pooling, one server connection, 127.0.0.1 ----
my $bouncer = start_pgbouncer($node);
my ($dir, $port) = ($bouncer->{dir}, $bouncer->{port});
# $pool: the node as seen through pgbouncer
my $pool = $bouncer->{pool};
my @as_backend = (extra_params => [ '-U', 'backend' ]);
ok($pool->poll_query_until('postgres', 'SELECT 1', '1'), 'pgbouncer accepts connections');

# B: a fresh psql client through pgbouncer for every call (simple protocol).
sub b_call
{
	my ($sql) = @_;
	my ($out, $state) = psql_state($pool, 'postgres', $sql, @as_backend);
	return wantarray ? ($out, $state) : $out;
}

# A: one long-lived psql session through pgbouncer.
my $a = $pool->background_psql('postgres', on_error_stop => 0,
	extra_params => [ '-U', 'backend', '-v', 'VERBOSITY=verbose' ]);
sub a_call { return session_query($a, @_) }

my ($out, $state);

# --- one server connection, shared -----------------------------------------
my $pid_a = a_call('SELECT pg_backend_pid()');
my $pid_b = b_call('SELECT pg_backend_pid()');
like($pid_a, qr/^\d+$/, 'A has a backend');
is($pid_b, $pid_a, 'A and B are served by the same server connection');
is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_stat_activity WHERE usename = 'backend'}),
	'1', 'one server connection for the login role');

# --- each token works for its own client only ------------------------------
($out, $state) = a_call(qq{SELECT status FROM tgt_profile.upsert_profile('alpha', '{"by": "alpha"}', 'a1', 'crm-a1', "authorization" => 'Bearer $ta')});
is("$out/$state", 'created/', 'A upserts with its token');
($out, $state) = b_call(qq{SELECT status FROM tgt_profile.upsert_profile('beta', '{"by": "beta"}', 'b1', 'crm-b1', "authorization" => 'Bearer $tb')});
is("$out/$state", 'created/', 'B upserts with its token, right after A, same backend');
($out, $state) = a_call(qq{SELECT tgt_profile.get_profile('beta', 'b1', "authorization" => 'Bearer $ta')});
is($state, '28P01', "A's token on B's client is 28P01");
($out, $state) = b_call(qq{SELECT tgt_profile.get_profile('alpha', 'a1', "authorization" => 'Bearer $tb')});
is($state, '28P01', "B's token on A's client is 28P01");
($out, $state) = b_call(qq{SELECT tgt_profile.upsert_profile('alpha', '{"by": "beta"}', 'a1', "authorization" => 'Bearer $tb')});
is($state, '28P01', "B cannot write A's profile with its own token");
($out, $state) = a_call(qq{SELECT tgt_profile.delete_profile('beta', 'b1', "authorization" => 'Bearer $ta')});
is($state, '28P01', "A cannot delete B's profile with its own token");
is(a_call("SELECT tgt_profile.verify_token('alpha', '$ta') || '/' || tgt_profile.verify_token('beta', '$ta')"),
	'true/false', 'A: verify_token true for its client, false for the other');
is(b_call("SELECT tgt_profile.verify_token('beta', '$tb') || '/' || tgt_profile.verify_token('alpha', '$tb')"),
	'true/false', 'B: verify_token true for its client, false for the other');

# --- a transaction-local header ends with A's transaction, even for B
# waiting on the same server connection ---------------------------------
a_call('BEGIN');
a_call(qq{SELECT set_config('request.headers', '{"authorization": "Bearer $ta"}', true)});
is(a_call(q{SELECT tgt_profile.get_profile('alpha', 'a1') #>> '{profile,by}'}), 'alpha',
	'A: get_profile through a transaction-local request.headers');
# B's call has to wait: A holds the only server connection.
my ($b_out, $b_err) = ('', '');
my $b = psql_start($pool, 'backend', \$b_out, \$b_err,
	q{SELECT current_setting('request.headers', true)},
	q{SELECT tgt_profile.authorize('alpha')});
my $waiting = wait_for_waiting_client($bouncer, 'backend');
cmp_ok($waiting, '>=', 1, 'B waits for the server connection that A holds');
a_call('COMMIT');
$b->finish;
like($b_err, qr/ERROR:\s+28000:/, "B, on the same server connection right after A's transaction: no token (28000)");
is($b_out =~ s/\s+$//r, '', "B did not see A's transaction-local request.headers (empty)");
is(a_call(q{SELECT coalesce(current_setting('request.headers', true), '')}), '',
	'A: request.headers is gone after its transaction');

# --- documented hazard: a session-level SET stays on the server connection -
my $hdr_a = qq{{"authorization": "Bearer $ta"}};
a_call(qq{SET request.headers = '$hdr_a'});
is(b_call(q{SELECT current_setting('request.headers', true)}), $hdr_a,
	'pgbouncer hazard: B sees the request.headers that A SET at session level');
is(b_call(q{SELECT 'ok' FROM tgt_profile.authorize('alpha')}), 'ok',
	"pgbouncer hazard: so B, passing no argument, acts with A's header (use an argument or set_config(..., true))");
# an explicit argument is never replaced by what is left in the session
($out, $state) = b_call(qq{SELECT tgt_profile.authorize('alpha', 'Bearer $tb')});
is($state, '28P01', "with A's header in the session, B's own token on alpha is still 28P01");
($out, $state) = b_call(qq{SELECT tgt_profile.get_profile('alpha', 'a1', "authorization" => 'Bearer $tb')});
is($state, '28P01', "with A's header in the session, B's get_profile on alpha with its token is 28P01");
($out, $state) = b_call(q{SELECT tgt_profile.authorize('alpha', 'Basic Zm9vOmJhcg==')});
is($state, '28000', "with A's header in the session, another scheme in the argument is 28000");
($out, $state) = b_call(q{SELECT tgt_profile.authorize('alpha', '')});
is($state, '28000', "with A's header in the session, an empty argument is 28000");
($out, $state) = b_call(qq{SELECT status FROM tgt_profile.upsert_profile('beta', '{"n": 2}', 'b1', "authorization" => 'Bearer $tb')});
is("$out/$state", 'updated/', "with A's header in the session, B's own calls with its argument work");
($out, $state) = b_call(q{SELECT tgt_profile.authorize('beta')});
is($state, '28P01', "A's leftover header is refused on B's client");
a_call('RESET request.headers');
($out, $state) = b_call(q{SELECT tgt_profile.authorize('alpha')});
is($state, '28000', 'after RESET, B passing no argument has no token again');

# --- the whole API, simple protocol, A and B interleaved ------------------
for my $c ([ 'A', \&a_call, 'alpha', $ta ], [ 'B', \&b_call, 'beta', $tb ])
{
	my ($who, $call, $client, $tok) = @$c;
	my $auth = "'Bearer $tok'";
	is($call->(qq{SELECT 'ok' FROM tgt_profile.authorize('$client', $auth)}), 'ok', "$who: authorize");
	is($call->(qq{SELECT status FROM tgt_profile.upsert_profile('$client', '{"by": "$client", "gone": 1}', 'x1', "authorization" => $auth)}),
		'created', "$who: upsert_profile creates");
	is($call->(qq{SELECT status FROM tgt_profile.upsert_profile('$client', '{"gone": null}', 'x1', "authorization" => $auth)}),
		'updated', "$who: upsert_profile removes an attribute");
	is($call->(qq{SELECT tgt_profile.get_profile('$client', 'x1', "authorization" => $auth) ->> 'profile'}),
		qq({"by": "$client"}), "$who: get_profile");
	my $batch = $call->(qq{SELECT batch_id || '/' || rows_total || '/' || rows_rejected FROM tgt_profile.bulk_update('$client',
		E'{"pcId": "x2", "by": "$client"}\\n{"pcId": "x3", "bad": {"nested": 1}}\\n', "authorization" => $auth)});
	like($batch, qr{^\d+/2/1$}, "$who: bulk_update applies one row and rejects one");
	my ($batch_id) = split m{/}, $batch;
	is($call->(qq{SELECT s->>'client' || '/' || (s->>'created') || '/' || jsonb_array_length(s->'rejects')
		FROM tgt_profile.batch_status('$client', $batch_id, "authorization" => $auth) s}),
		"$client/1/1", "$who: batch_status");
	is($call->(qq{SELECT tgt_profile.delete_profile('$client', 'x2', "authorization" => $auth)}), 't', "$who: delete_profile");
	is($call->(qq{SELECT tgt_profile.verify_token('$client', '$tok')}), 't', "$who: verify_token");
	my $other = $client eq 'alpha' ? 'beta' : 'alpha';
	($out, $state) = $call->(qq{SELECT tgt_profile.batch_status('$other', $batch_id, "authorization" => $auth)});
	is($state, '28P01', "$who: batch_status of the other client with its own token is 28P01");
}

# --- extended protocol: two pgbench runs at once, one per client ----------
my $script = <<'EOF';
\set n random(1, 20)
SELECT (coalesce(current_setting('request.headers', true), '') = '')::int AS clean \gset
\if :clean != 1
SELECT 1/0 AS request_headers_left_over;
\endif
SELECT tgt_profile.verify_token(:me, :tok)::int AS mine, tgt_profile.verify_token(:other, :tok)::int AS crossed \gset
\if :mine != 1 or :crossed != 0
SELECT 1/0 AS verify_token_mixed_up;
\endif
SELECT tgt_profile.authorize(:me, :auth);
SELECT tnt_id FROM tgt_profile.upsert_profile(:me, CAST(:attrs AS jsonb), 'p' || CAST(:n AS text), "authorization" => :auth);
SELECT (tgt_profile.get_profile(:me, 'p' || CAST(:n AS text), "authorization" => :auth) #>> '{profile,by}' = :me)::int AS same \gset
\if :same != 1
SELECT 1/0 AS get_profile_mixed_up;
\endif
BEGIN;
SELECT set_config('request.headers', :hdr, true);
SELECT tgt_profile.authorize(:me);
SELECT tgt_profile.get_profile(:me, 'p1');
END;
SELECT batch_id FROM tgt_profile.bulk_update(:me, CAST(:batch AS text), "authorization" => :auth) \gset
SELECT (tgt_profile.batch_status(:me, :batch_id, "authorization" => :auth) ->> 'client' = :me)::int AS bok \gset
\if :bok != 1
SELECT 1/0 AS batch_status_mixed_up;
\endif
SELECT tgt_profile.delete_profile(:me, 'tmp', "authorization" => :auth);
EOF
my $script_file = "$dir/mix.sql";
append_to_file($script_file, $script);

sub pgbench_start
{
	my ($client, $tok, $mode, $nclients, $out) = @_;
	my $other = $client eq 'alpha' ? 'beta' : 'alpha';
	return IPC::Run::start(
		[ 'pgbench', '-n', '-h', '127.0.0.1', '-p', $port, '-U', 'backend', '-M', $mode,
		  '-c', $nclients, '-j', '1', '-T', '3', '-f', $script_file,
		  '-D', "me=$client", '-D', "other=$other", '-D', "tok=$tok", '-D', "auth=Bearer $tok",
		  '-D', qq{hdr={"authorization": "Bearer $tok"}}, '-D', qq{attrs={"by": "$client"}},
		  '-D', qq{batch={"pcId": "p1", "by": "$client"}}, 'postgres' ],
		'>', \$out->[0], '2>', \$out->[1], IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
}

# Named prepared statements live on the server connection: only one pgbench
# client at a time may use -M prepared (they would all name theirs P_0...).
for my $run ([ 'extended', 2, 'extended', 2 ], [ 'prepared', 1, 'extended', 2 ], [ 'extended', 2, 'prepared', 1 ])
{
	my ($mode_a, $n_a, $mode_b, $n_b) = @$run;
	my (@out_a, @out_b);
	my $ha = pgbench_start('alpha', $ta, $mode_a, $n_a, \@out_a);
	my $hb = pgbench_start('beta', $tb, $mode_b, $n_b, \@out_b);
	my $ok_a = $ha->finish;
	my $ok_b = $hb->finish;
	for my $r ([ 'alpha', $mode_a, $ok_a, \@out_a ], [ 'beta', $mode_b, $ok_b, \@out_b ])
	{
		my ($client, $mode, $ok, $o) = @$r;
		my $tag = "pgbench $client -M $mode (with the other client's pgbench alongside)";
		ok($ok, "$tag: exit status 0") or diag("$o->[0]\n$o->[1]");
		like($o->[0], qr/number of failed transactions: 0 /, "$tag: no failed transaction");
		my ($n) = $o->[0] =~ /number of transactions actually processed: (\d+)/;
		cmp_ok($n // 0, '>', 0, "$tag: $n transactions");
	}
	# prepared statements stay on the server connection: clear them
	is(b_call('DEALLOCATE ALL'), '', 'DEALLOCATE ALL after the run');
}

# --- afterwards ----------------------------------------------------------
is($node->safe_psql('postgres', q{SELECT count(*) FROM tgt_profile.profiles WHERE attributes ? 'by' AND attributes->>'by' <> client}),
	'0', 'no profile carries the other client\'s writes');
is($node->safe_psql('postgres', q{SELECT count(DISTINCT client) FROM tgt_profile.profiles WHERE tnt_id LIKE 'p%'}),
	'2', 'both clients wrote through pgbench');
is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_stat_activity WHERE usename = 'backend'}),
	'1', 'still one server connection after everything');
my ($servers) = grep { /^postgres\|backend\|/ } split /\n/, pgbouncer_admin($bouncer, 'SHOW POOLS');
ok(defined $servers, 'pgbouncer has the pool postgres/backend');
my $log = slurp_file($node->logfile);
# (calls with no token at all are logged too, with "presented no bearer token"
# or "presented no token in request header")
my @failed = $log =~ /(authentication failed for client "\w+"\n[^\n]*DETAIL:  Role "\w+" presented (?:token|a malformed))/g;
is(scalar(@failed), 9, 'exactly the 9 deliberate failures with a token were logged (the pgbench runs had none)');

$a->quit;
ok(stop_pgbouncer($bouncer), 'pgbouncer stopped');
$node->stop;
done_testing();
