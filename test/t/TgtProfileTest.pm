# Helpers shared by the TAP tests in test/t (not a test itself: prove runs
# only *.pl).  Load it with
#
#   use FindBin;
#   use lib $FindBin::RealBin;
#   use TgtProfileTest;
package TgtProfileTest;

use strict;
use warnings;
use Exporter 'import';
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

our @EXPORT = qw(psql_state new_token token_windows via
  start_pgbouncer stop_pgbouncer pgbouncer_admin wait_for_waiting_client psql_start
  session_query);

# psql_state($node, $dbname, $sql, %psql_params)
#   Runs $sql with VERBOSITY=verbose and returns ($stdout, $sqlstate, $stderr):
#   $sqlstate is the SQLSTATE of the first error ('' when none).  Extra psql
#   parameters (-U ...) go in extra_params as for $node->psql.
sub psql_state
{
	my ($node, $dbname, $sql, %params) = @_;
	my ($out, $err) = ('', '');
	my @extra = ('-v', 'VERBOSITY=verbose', @{ $params{extra_params} // [] });
	$node->psql($dbname, $sql,
		stdout => \$out,
		stderr => \$err,
		on_error_stop => 1,
		extra_params => \@extra);
	my $state = $err =~ /(?:ERROR|FATAL):\s+([0-9A-Z]{5}):/ ? $1 : '';
	return ($out, $state, $err);
}

# new_token($node, $dbname, $client, $args): generate_token as the
# connecting role (by default the bootstrap superuser) and return its text.
# $args: further SQL arguments, e.g. "grace => '1 hour'".
sub new_token
{
	my ($node, $dbname, $client, $args, %params) = @_;
	my $extra = defined $args && $args ne '' ? ", $args" : '';
	my $token = $node->safe_psql($dbname,
		"SELECT token FROM tgt_profile.generate_token('$client'$extra)", %params);
	die "generate_token returned '$token'" unless $token =~ /^tgtp_[A-Za-z0-9_-]{48}$/;
	return $token;
}

# token_windows($token, $len): every substring of $len characters of the
# token.  The first 9 characters (the hint) may be logged; any window of 10
# or more characters reaches into the secret part.
sub token_windows
{
	my ($token, $len) = @_;
	return map { substr($token, $_, $len) } 0 .. length($token) - $len;
}

# session_query($session, $sql): $sql in a background_psql session
# (started with on_error_stop => 0 and VERBOSITY=verbose); in list context
# ($stdout, $sqlstate of the first error or ''), else $stdout.
sub session_query
{
	my ($session, $sql) = @_;
	$session->{stderr} = '';
	my $out = $session->query($sql);
	my $state = $session->{stderr} =~ /(?:ERROR|FATAL):\s+([0-9A-Z]{5}):/ ? $1 : '';
	return wantarray ? ($out, $state) : $out;
}

# via($node, $host, $port): a copy of $node whose connection methods (psql,
# safe_psql, background_psql, pgbench, poll_query_until) go to $host:$port
# (pgbouncer, say) instead of the node itself.  The copy is not registered
# with PostgreSQL::Test::Cluster, so nothing stops or removes it at exit.
sub via
{
	my ($node, $host, $port) = @_;
	return bless { %$node, _host => $host, _port => $port }, ref $node;
}

# start_pgbouncer($node, %opts): pgbouncer in front of $node, the way the
# pooling tests need it: transaction pooling with one server connection
# (default_pool_size = 1, max_db_connections = 1), listening on 127.0.0.1
# only, no server_reset_query, trust authentication for the roles in
# $opts{users} (default: backend, postgres; postgres is its admin user).
# Skips the whole test when pgbouncer is not installed.  Returns a hash:
# pool (the node as seen through pgbouncer, see via), port, dir, pid.
# A pgbouncer left running is stopped when the script exits, also on die.
my @bouncer_pids;
END
{
	kill 'TERM', $_ for @bouncer_pids;
}

sub start_pgbouncer
{
	my ($node, %opts) = @_;
	my $pgbouncer = '/usr/sbin/pgbouncer';
	plan skip_all => "no $pgbouncer (Debian package pgbouncer)" unless -x $pgbouncer;
	my @users = @{ $opts{users} // [ 'backend', 'postgres' ] };
	my $dir = $node->basedir . '/pgbouncer';
	mkdir $dir or die "mkdir $dir: $!";
	my $port = PostgreSQL::Test::Cluster::get_free_port();
	my ($sock, $nport) = ($node->host, $node->port);
	append_to_file("$dir/userlist.txt", join('', map { qq{"$_" ""\n} } @users));
	append_to_file("$dir/pgbouncer.ini", <<"EOF");
[databases]
postgres = host=$sock port=$nport dbname=postgres

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = trust
auth_file = $dir/userlist.txt
admin_users = postgres
pool_mode = transaction
default_pool_size = 1
min_pool_size = 0
reserve_pool_size = 0
max_db_connections = 1
max_client_conn = 100
server_reset_query =
ignore_startup_parameters = extra_float_digits,options
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
EOF
	system_or_bail($pgbouncer, '-d', '-q', "$dir/pgbouncer.ini");
	for (1 .. 100)
	{
		last if -s "$dir/pgbouncer.pid";
		usleep(100_000);
	}
	my $pid = slurp_file("$dir/pgbouncer.pid") =~ /(\d+)/ ? $1 : die 'pgbouncer did not start';
	push @bouncer_pids, $pid;
	return { pool => via($node, '127.0.0.1', $port), port => $port, dir => $dir, pid => $pid };
}

# stop_pgbouncer($bouncer): stop it and wait; true when it has stopped.
sub stop_pgbouncer
{
	my ($bouncer) = @_;
	my $pid = $bouncer->{pid};
	kill 'TERM', $pid;
	for (1 .. 100)
	{
		last unless kill 0, $pid;
		usleep(100_000);
	}
	return 0 if kill 0, $pid;
	@bouncer_pids = grep { $_ != $pid } @bouncer_pids;
	return 1;
}

# pgbouncer_admin($bouncer, $sql): a command on pgbouncer's admin console.
sub pgbouncer_admin
{
	my ($bouncer, $sql) = @_;
	return $bouncer->{pool}->safe_psql('pgbouncer', $sql, extra_params => [ '-U', 'postgres' ]);
}

# wait_for_waiting_client($bouncer, $user): wait until a client of $user
# waits for a server connection of the pool postgres/$user (SHOW POOLS:
# database|user|cl_active|cl_waiting|...); returns how many wait.
sub wait_for_waiting_client
{
	my ($bouncer, $user) = @_;
	my $waiting = 0;
	for (1 .. 300)
	{
		my ($row) = grep { /^postgres\|\Q$user\E\|/ } split /\n/, pgbouncer_admin($bouncer, 'SHOW POOLS');
		$waiting = (split /\|/, $row)[3] if $row;
		last if $waiting >= 1;
		usleep(100_000);
	}
	return $waiting;
}

# psql_start($node, $user, \$out, \$err, @sql): psql as $user on database
# postgres, one -c per statement (VERBOSITY verbose, so errors show their
# SQLSTATE), started in the background; wait for it with ->finish.
sub psql_start
{
	my ($node, $user, $out, $err, @sql) = @_;
	return IPC::Run::start(
		[ 'psql', '-XAtq', '-v', 'VERBOSITY=verbose', '-U', $user, '-d', $node->connstr('postgres'),
		  map { ('-c', $_) } @sql ],
		'>', $out, '2>', $err, IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
}

1;
