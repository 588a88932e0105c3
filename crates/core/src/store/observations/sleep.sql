-- Sleep episodes from sleep_stage samples, as the adherence summaries define them: a run of
-- samples no more than adherence_settings.sleep_session_gap_minutes apart; a sample stands for
-- the 30 seconds it starts; light, deep, rem (stages) and asleep, restless (classic) are sleep,
-- wake and awake are not. An episode belongs to the local day it ends on, and the main sleep
-- of a day is its episode with the most sleep (ties to the later end).
-- $1 participant, $2 IANA zone, $3 first day (included), $4 last day (excluded).
with bounds as (
  select $3::date::timestamp at time zone $2 as t0,
         $4::date::timestamp at time zone $2 as t1,
         (select make_interval(mins => s.sleep_session_gap_minutes)
          from adherence_settings s) as gap
), stages as (
  -- Episodes ending in the range may start the evening before it; 36 hours either side sees
  -- every episode that ends in it whole.
  select r.timestamp, r.value_text as label,
         r.timestamp - lag(r.timestamp) over (order by r.timestamp) as since_previous
  from raw_data r, bounds b
  where r.participant_id = $1 and r.data_type = 'sleep_stage'
    and r.timestamp >= b.t0 - interval '36 hours' and r.timestamp < b.t1 + interval '36 hours'
), numbered as (
  select s.timestamp, s.label,
         sum(case when s.since_previous is null or s.since_previous > b.gap then 1 else 0 end)
           over (order by s.timestamp) as episode
  from stages s, bounds b
), episodes as (
  select min(n.timestamp) as started,
         max(n.timestamp) + interval '30 seconds' as ended,
         count(*) filter (where n.label in ('light', 'deep', 'rem', 'asleep', 'restless'))
           as asleep_slots,
         count(*) filter (where n.label in ('wake', 'awake')) as awake_slots
  from numbered n
  group by n.episode
), ranked as (
  select e.*,
         row_number() over (partition by (e.ended at time zone $2)::date
                            order by e.asleep_slots desc, e.ended desc) = 1 as is_main
  from episodes e
  where e.asleep_slots > 0
)
select r.started, r.ended, r.asleep_slots * 30 as asleep_secs, r.awake_slots * 30 as awake_secs,
       r.is_main
from ranked r
where (r.ended at time zone $2)::date >= $3::date and (r.ended at time zone $2)::date < $4::date
order by r.started
