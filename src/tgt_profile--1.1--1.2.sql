/* tgt_profile 1.1 -> 1.2 */

\echo Use "ALTER EXTENSION tgt_profile UPDATE TO '1.2'" to load this file. \quit
