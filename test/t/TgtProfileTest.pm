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
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

our @EXPORT = qw(psql_state new_token token_windows via);

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

# via($node, $host, $port): a copy of $node whose connection methods (psql,
# safe_psql, background_psql, pgbench, poll_query_until) go to $host:$port
# (pgbouncer, say) instead of the node itself.  The copy is not registered
# with PostgreSQL::Test::Cluster, so nothing stops or removes it at exit.
sub via
{
	my ($node, $host, $port) = @_;
	return bless { %$node, _host => $host, _port => $port }, ref $node;
}

1;
