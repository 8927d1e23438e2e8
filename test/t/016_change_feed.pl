# The change feed the README recommends instead of a trigger: logical
# decoding of tgt_profile.profiles sees every row every write path writes --
# upsert_profile (an SQL insert, a direct tuple update), bulk_update (a
# direct multi-insert and direct updates), delete_profile, purge_expired and
# drop_client -- with the table in a publication, on either layout.
use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use TgtProfileTest;

my $node = PostgreSQL::Test::Cluster->new('feed');
$node->init(allows_streaming => 'logical');
$node->start;

$node->safe_psql('postgres', q{
	CREATE EXTENSION tgt_profile CASCADE;
	SELECT tgt_profile.create_client('feed');
	CREATE PUBLICATION profile_changes FOR TABLE tgt_profile.profiles
		WITH (publish_via_partition_root = true);
	SELECT pg_create_logical_replication_slot('feed', 'test_decoding');
});

# The changes of profiles decoded since the last call, one line each:
# "INSERT p1", "UPDATE p1", "DELETE p1" (the partition's name, if any, aside).
sub changes
{
	my $out = $node->safe_psql('postgres', q{
		SELECT data FROM pg_logical_slot_get_changes('feed', NULL, NULL)
		 WHERE data LIKE 'table tgt_profile.profiles%'});
	my @lines;
	for my $line (split /\n/, $out)
	{
		$line =~ /^table tgt_profile\.profiles(?:_\d+)?: (INSERT|UPDATE|DELETE): .*tnt_id\[text\]:'([^']*)'/
		  or die "unexpected change: $line";
		push @lines, "$1 $2";
	}
	return join(',', sort @lines);
}

$node->safe_psql('postgres', q{SELECT tgt_profile.upsert_profile('feed', '{"a": 1}', 'u1')});
is(changes(), 'INSERT u1', 'a new profile from upsert_profile');
$node->safe_psql('postgres', q{SELECT tgt_profile.upsert_profile('feed', '{"a": 2}', 'u1')});
is(changes(), 'UPDATE u1', 'a changed profile from upsert_profile');
$node->safe_psql('postgres', q{SELECT tgt_profile.upsert_profile('feed', '{"a": 2}', 'u1')});
is(changes(), '', 'an unchanged upsert writes nothing');

$node->safe_psql('postgres',
	q{SELECT tgt_profile.bulk_update('feed', E'batch=pcId,a\nb1,1\nb2,2\nb3,3\nu1,4\n')});
is(changes(), 'INSERT b1,INSERT b2,INSERT b3,UPDATE u1',
	'the new and the changed profiles of a batch');
$node->safe_psql('postgres',
	q{SELECT tgt_profile.bulk_update('feed', '[{"pcId": "b1", "x": "y"}]')});
like($node->safe_psql('postgres', q{
		SELECT string_agg(data, E'\n') FROM pg_logical_slot_peek_changes('feed', NULL, NULL)
		 WHERE data LIKE 'table tgt_profile.profiles%'}),
	qr/UPDATE: .*tnt_id\[text\]:'b1'.*attributes\[jsonb\]:'\{"a": "1", "x": "y"\}'/,
	'a decoded update carries the whole new row');
is(changes(), 'UPDATE b1', 'one update');

$node->safe_psql('postgres', q{SELECT tgt_profile.delete_profile('feed', 'b2')});
is(changes(), 'DELETE b2', 'delete_profile');

$node->safe_psql('postgres', q{
	UPDATE tgt_profile.profiles SET last_seen_at = now() - interval '1 year'
	 WHERE client = 'feed' AND tnt_id = 'b3'});
is(changes(), 'UPDATE b3', 'a direct UPDATE by the DBA');
$node->safe_psql('postgres', q{SELECT tgt_profile.purge_expired('feed')});
is(changes(), 'DELETE b3', 'purge_expired');

$node->safe_psql('postgres', q{SELECT tgt_profile.drop_client('feed')});
is(changes(), 'DELETE b1,DELETE u1', 'drop_client');

$node->stop;
done_testing();
