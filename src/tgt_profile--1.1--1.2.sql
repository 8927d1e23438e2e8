/* tgt_profile 1.1 -> 1.2 */

\echo Use "ALTER EXTENSION tgt_profile UPDATE TO '1.2'" to load this file. \quit

-- The token caches are used only while this trigger fires always, also for
-- writes made with session_replication_role = replica (token_verify.c).
ALTER TABLE tgt_profile.token_store ENABLE ALWAYS TRIGGER token_store_changed;
