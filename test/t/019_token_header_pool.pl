# The token header behind pgbouncer in transaction pooling, one server
# connection (the set-up of 010_pgbouncer.pl): the login role is configured
# the documented way (ALTER ROLE ... SET tgt_profile.token_header =
# 'x-profile-token', applied when pgbouncer opens the server connection),
# and every request sets request.headers as PostgREST 12+ does
# (set_config(..., true) inside the request's transaction).  A header set
# for one request never authorizes the next request or transaction on the
# same server connection: not after COMMIT, ROLLBACK or an error, not for
# the next client waiting for that connection, not for the same client.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use TgtProfileTest;

my $node = PostgreSQL::Test::Cluster->new('header_pool');
$node->init;
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION tgt_profile CASCADE;
	CREATE ROLE backend LOGIN IN ROLE tgt_profile_api;
	ALTER ROLE backend SET tgt_profile.token_header = 'x-profile-token';
	SELECT tgt_profile.create_client('alpha', require_auth => true);
});
my $tok = new_token($node, 'postgres', 'alpha');
my $bouncer = start_pgbouncer($node);
my $pool = $bouncer->{pool};
ok($pool->poll_query_until('postgres', 'SELECT 1', '1'), 'pgbouncer accepts connections');

# request(@sql): one client connection through pgbouncer, as backend;
# returns (the output, the SQLSTATE of the first error or '').
sub request
{
	my ($out, $state) = psql_state($pool, 'postgres', join("\n", @_), extra_params => [ '-U', 'backend' ]);
	return ($out, $state);
}

# headers($value): the statement PostgREST runs at the start of a request.
sub headers
{
	my ($value) = @_;
	my $json = qq{{"accept": "*/*", "x-profile-token": "$value"}};
	return qq{SELECT set_config('request.headers', '$json', true) AS request_headers \\gset};
}

my $leftover = q{SELECT '[' || coalesce(current_setting('request.headers', true), '<unset>') || ']';};
my $pid = q{SELECT pg_backend_pid();};
my ($out, $state);

is((request('SHOW tgt_profile.token_header;'))[0], 'x-profile-token',
	'the role setting reaches the pooled server connection');
($out, $state) = request(q{SELECT status FROM tgt_profile.upsert_profile('alpha', '{"tier": "gold"}', 'p1', "authorization" => 'Bearer } . $tok . q{');});
is("$out/$state", 'created/', 'set-up: a profile');

# --- each request ends its transaction one way; the next finds nothing ----
for my $case (
	[ 'bare token, COMMIT', $tok, 'COMMIT;' ],
	[ 'Bearer token, COMMIT', "Bearer $tok", 'COMMIT;' ],
	[ 'bare token, ROLLBACK', $tok, 'ROLLBACK;' ],
	[ 'bare token, an error ends the transaction', $tok, 'SELECT 1/0;', 'ROLLBACK;' ])
{
	# (with ON_ERROR_STOP 0, psql goes on after an error and rolls back, as
	# PostgREST does)
	my ($label, $value, @end) = @$case;
	($out, $state) = request('\\set ON_ERROR_STOP 0', 'BEGIN;', headers($value), $pid,
		q{SELECT tgt_profile.get_profile('alpha', 'p1') #>> '{profile,tier}';}, @end);
	my ($pid1, $tier) = split /\n/, $out;
	is($tier, 'gold', "$label: the request with the header is authorized");
	($out, $state) = request($pid, $leftover, q{SELECT tgt_profile.get_profile('alpha', 'p1');});
	my ($pid2, $left) = split /\n/, $out;
	is($pid2, $pid1, "$label: the next request runs on the same server connection");
	is($left, '[]', "$label: it finds request.headers empty");
	is($state, '28000', "$label: and is not authorized (28000)");
}

# --- the same client's next transaction, on the same server connection ----
my $a = $pool->background_psql('postgres', on_error_stop => 0,
	extra_params => [ '-U', 'backend', '-v', 'VERBOSITY=verbose' ]);
sub a_call { return session_query($a, @_) }
a_call('BEGIN');
a_call(headers($tok));
is(a_call(q{SELECT tgt_profile.get_profile('alpha', 'p1') #>> '{profile,tier}'}), 'gold',
	'A: authorized inside its request transaction');
a_call('COMMIT');
($out, $state) = a_call(q{SELECT tgt_profile.authorize('alpha')});
is($state, '28000', "A's next transaction, same client and server connection: no token (28000)");

# --- the next client, waiting for the server connection A holds ----------
my $pid_a;
a_call('BEGIN');
a_call(headers("Bearer $tok"));
$pid_a = a_call('SELECT pg_backend_pid()');
is(a_call(q{SELECT 'ok' FROM tgt_profile.authorize('alpha')}), 'ok', 'A: authorized, transaction still open');
my ($b_out, $b_err) = ('', '');
my $b = psql_start($pool, 'backend', \$b_out, \$b_err,
	'SELECT pg_backend_pid()', $leftover, q{SELECT tgt_profile.get_profile('alpha', 'p1')});
cmp_ok(wait_for_waiting_client($bouncer, 'backend'), '>=', 1, 'B waits for the server connection that A holds');
a_call('COMMIT');
$b->finish;
my ($pid_b, $b_left) = split /\n/, $b_out;
is($pid_b, $pid_a, 'B is served by the server connection A just released');
is($b_left, '[]', "B finds A's request.headers gone");
like($b_err, qr/ERROR:\s+28000:/, "B, passing no token, is not authorized by A's header (28000)");

# B's own header works for B's own request
($out, $state) = request('BEGIN;', headers($tok), q{SELECT tgt_profile.get_profile('alpha', 'p1') #>> '{profile,tier}';}, 'COMMIT;');
is("$out/$state", 'gold/', 'a request with its own header is authorized');

$a->quit;
ok(stop_pgbouncer($bouncer), 'pgbouncer stopped');
# PostgreSQL::Test::Cluster logs every statement (log_statement = all), so
# the statements that set request.headers are there; nothing else is.
my @others = grep { !/ LOG:  statement: / } split /\n/, slurp_file($node->logfile);
is(scalar(grep { index($_, substr($tok, 9)) >= 0 } @others), 0,
	'no server log line of ours (failed authentications included) holds the token text');
$node->stop;
done_testing();
