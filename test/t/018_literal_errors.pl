# Every error raised while one of our functions runs hides the statement
# text from the server log, so a token passed as a literal (against the
# README's advice) is not logged by any of them: 22023, 22P02, P0002,
# 23505, 54000 and 42501 alike, raised by our code or by PostgreSQL inside
# it.  A failing statement that does not reach our functions is still
# logged (the server's default log_min_error_statement = error).
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use TgtProfileTest;

my $node = PostgreSQL::Test::Cluster->new('literal');
$node->init;
# the server's defaults (the test framework logs every statement)
$node->append_conf('postgresql.conf', "log_statement = none\nlog_min_error_statement = error\n");
$node->start;
$node->safe_psql('postgres', q{
	CREATE EXTENSION tgt_profile CASCADE;
	CREATE ROLE lit_api LOGIN IN ROLE tgt_profile_api;
	SELECT tgt_profile.create_client('lit', require_auth => true);
	SET tgt_profile.max_batch_rows = 2;
});
my $tok = new_token($node, 'postgres', 'lit');
$node->safe_psql('postgres', qq{
	SELECT tgt_profile.upsert_profile('lit', '{}', 'owner', 'crm-1', 'Bearer $tok');
	SELECT tgt_profile.upsert_profile('lit', '{}', 'other', NULL, 'Bearer $tok');
});

my %calls = (
	'22023' => qq{SELECT tgt_profile.upsert_profile('lit', '{"a": {"nested": 1}}', 'p1', NULL, 'Bearer $tok')},
	'22P02' => qq{SELECT * FROM tgt_profile.bulk_update('lit', 'not a batch', 'Bearer $tok')},
	'P0002' => qq{SELECT tgt_profile.authorize('nosuch', 'Bearer $tok')},
	'23505' => qq{SELECT tgt_profile.upsert_profile('lit', '{}', 'other', 'crm-1', 'Bearer $tok')},
	'54000' => qq{SELECT * FROM tgt_profile.bulk_update('lit', E'batch=pcId,a\\np1,x\\np2,y\\np3,z\\n', 'Bearer $tok')},
	'28P01' => qq{SELECT tgt_profile.authorize('lit', 'Bearer ${tok}x')},
);
for my $state (sort keys %calls)
{
	my ($out, $got) = psql_state($node, 'postgres',
		($state eq '54000' ? "SET tgt_profile.max_batch_rows = 2;\n" : '') . $calls{$state} . ';',
		extra_params => [ '-U', $state eq '54000' ? 'postgres' : 'lit_api' ]);
	is($got, $state, "a call with a literal token fails with $state");
}
# control: a failing statement outside our functions is logged
my (undef, $state) = psql_state($node, 'postgres', "SELECT 1/0 AS control_statement;");
is($state, '22012', 'the control statement fails');

my $log = slurp_file($node->logfile);
like($log, qr/STATEMENT:\s+SELECT 1\/0 AS control_statement/, 'the server logs failing statements');
my @found = grep { index($log, $_) >= 0 } token_windows($tok, 10);
is(scalar(@found), 0, 'the server log holds no part of the token beyond its hint')
  or diag('found: ' . join(', ', @found));
unlike($log, qr/STATEMENT:[^\n]*tgt_profile\./, 'no statement calling our functions is logged');

$node->stop;
done_testing();
