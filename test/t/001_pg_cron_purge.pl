# purge_expired scheduled with pg_cron (Debian's postgresql-NN-cron) on a
# throwaway cluster: expired profiles go, fresh ones stay, the job succeeds.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('cron');
$node->init;
# background workers: the job needs no libpq connection (and no password)
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'pg_cron'
cron.database_name = 'postgres'
cron.use_background_workers = on
max_worker_processes = 16
});
$node->start;

$node->safe_psql('postgres', q{
	CREATE EXTENSION tgt_profile CASCADE;
	CREATE EXTENSION pg_cron;
	SELECT tgt_profile.create_client('cron');
	SELECT tgt_profile.upsert_profile('cron', '{"a": 1}', 'old-' || i) FROM generate_series(1, 5) i;
	SELECT tgt_profile.upsert_profile('cron', '{"a": 1}', 'fresh-' || i) FROM generate_series(1, 3) i;
	UPDATE tgt_profile.profiles SET last_seen_at = now() - interval '15 days'
	 WHERE client = 'cron' AND tnt_id LIKE 'old-%';
});
is($node->safe_psql('postgres', q{SELECT count(*) FROM tgt_profile.profiles}), '8', 'eight profiles before the purge');

# The README's recipe: every minute is the finest pg_cron 1.4 schedule.
my $job = $node->safe_psql('postgres',
	q{SELECT cron.schedule('tgt-profile-purge', '* * * * *', 'SELECT tgt_profile.purge_expired()')});
ok($job > 0, 'purge job scheduled');

ok($node->poll_query_until('postgres',
		q{SELECT count(*) FROM cron.job_run_details WHERE status = 'succeeded'}, '1'),
	'the scheduled purge ran and succeeded');
is($node->safe_psql('postgres', q{SELECT string_agg(tnt_id, ',' ORDER BY tnt_id) FROM tgt_profile.profiles}),
	'fresh-1,fresh-2,fresh-3', 'expired profiles purged, fresh ones kept');
is($node->safe_psql('postgres',
		q{SELECT detail->>'profiles' FROM tgt_profile.audit_log WHERE action = 'purge_expired'}),
	'5', 'the purge is audited with its count');

$node->safe_psql('postgres', q{SELECT cron.unschedule('tgt-profile-purge')});
$node->stop;
done_testing();
