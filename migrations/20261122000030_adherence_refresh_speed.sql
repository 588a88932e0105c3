-- refresh_adherence, same results (the definitions in 20261122000010_adherence.sql stay the
-- contract), with each relation read by a few index range scans per participant, and an index
-- for those scans on the continuous aggregate.
--
-- Why: the first version joined the windows CTE to data_1m and raw_data. The participant id and
-- the time bounds then came from a join rather than from values the planner could see, so it
-- could not use the (participant_id, data_type, bucket) index nor exclude chunks: on TimescaleDB
-- each of the three reads of data_1m scanned every participant's minutes of the whole
-- continuous aggregate, evaluating the watermark per row (20–40 s per participant-month with 20
-- participants, and growing with the cohort). Now the function loops over the participants and
-- passes each one's bounds as parameters, so every read is a range scan of one participant:
-- heart-rate minutes once (over the window widened to the sleep sessions, shared by wear time
-- and sleep coverage, joined by hash to the sleep minutes), steps once, sleep stages once.

create or replace function refresh_adherence(
  p_from timestamptz, p_to timestamptz, p_participant text default null)
returns integer
language plpgsql as $$
declare
  gap interval;
  aw record;
  wrote integer;
  written integer := 0;
begin
  select make_interval(mins => s.sleep_session_gap_minutes) into gap from adherence_settings s;
  gap := coalesce(gap, interval '30 minutes');

  -- Refreshes of the same participant take turns (in a fixed order, so they cannot deadlock).
  perform count(pg_advisory_xact_lock(hashtextextended('adherence:' || w.participant_id, 0)))
  from (select a.participant_id from adherence_windows(p_from, p_to, p_participant) a
        order by 1) w;

  for aw in
    select a.participant_id, a.timezone, a.d0, a.d1, a.t0, a.t1
    from adherence_windows(p_from, p_to, p_participant) a
    order by a.participant_id
  loop
    delete from adherence_days a
    where a.participant_id = aw.participant_id and a.day between aw.d0 and aw.d1;

    with hr_minutes as materialized (
      -- The participant's heart-rate minutes over the window and the 36 hours either side
      -- that sleep sessions ending in it can reach (one minute more below: a sample's minute
      -- starts before the sample).
      select m.bucket
      from data_1m m
      where m.participant_id = aw.participant_id and m.data_type = 'heart_rate'
        and m.bucket >= aw.t0 - interval '36 hours 1 minute'
        and m.bucket < aw.t1 + interval '36 hours' and m.count_value_numeric > 0
    ), wear as (
      select (h.bucket at time zone aw.timezone)::date as day, count(*)::integer as wear_minutes
      from hr_minutes h
      where h.bucket >= aw.t0 and h.bucket < aw.t1
      group by 1
    ), steps as (
      select (m.bucket at time zone aw.timezone)::date as day, sum(m.sum_value_numeric) as steps
      from data_1m m
      where m.participant_id = aw.participant_id and m.data_type = 'steps'
        and m.bucket >= aw.t0 and m.bucket < aw.t1 and m.count_value_numeric > 0
      group by 1
    ), stages as (
      -- Sessions ending in the window may start the evening before; 36 hours either side
      -- sees every session that ends in it whole.
      select r.timestamp, r.value_text as label,
             r.timestamp - lag(r.timestamp) over (order by r.timestamp) as since_previous
      from raw_data r
      where r.participant_id = aw.participant_id and r.data_type = 'sleep_stage'
        and r.timestamp >= aw.t0 - interval '36 hours'
        and r.timestamp < aw.t1 + interval '36 hours'
    ), numbered as materialized (
      select s.timestamp, s.label,
             date_bin('1 minute', s.timestamp, timestamptz '2000-01-01 00:00:00+00') as minute,
             s.label in ('light', 'deep', 'rem', 'asleep', 'restless') as asleep,
             sum(case when s.since_previous is null or s.since_previous > gap then 1 else 0 end)
               over (order by s.timestamp) as session
      from stages s
    ), sessions as (
      select n.session,
             min(n.timestamp) as started,
             -- A sample stands for the 30 seconds it starts.
             max(n.timestamp) + interval '30 seconds' as ended,
             count(distinct n.minute) filter (where n.asleep)::integer as sleep_minutes,
             case when bool_or(n.label in ('light', 'deep', 'rem')) then 'stages'
                  else 'classic' end as sleep_type
      from numbered n
      group by 1
    ), main_sleep as (
      select distinct on ((s.ended at time zone aw.timezone)::date)
             s.session, (s.ended at time zone aw.timezone)::date as day,
             s.started, s.ended, s.sleep_minutes, s.sleep_type
      from sessions s
      where s.sleep_minutes > 0
        and (s.ended at time zone aw.timezone)::date between aw.d0 and aw.d1
      order by (s.ended at time zone aw.timezone)::date, s.sleep_minutes desc, s.ended desc
    ), sleep_hr as (
      select ms.day, count(*)::integer as covered
      from main_sleep ms
      join (select distinct n.session, n.minute from numbered n where n.asleep) sm
        on sm.session = ms.session
      join hr_minutes h on h.bucket = sm.minute
      group by 1
    ), days as (
      select day from wear
      union select day from steps
      union select day from main_sleep
    )
    insert into adherence_days as a (participant_id, day, wear_minutes, steps, main_sleep_type,
                                     main_sleep_start, main_sleep_end, sleep_minutes,
                                     sleep_hr_minutes)
    select aw.participant_id, d.day, coalesce(wr.wear_minutes, 0), st.steps, ms.sleep_type,
           ms.started, ms.ended, coalesce(ms.sleep_minutes, 0), coalesce(hr.covered, 0)
    from days d
    left join wear wr on wr.day = d.day
    left join steps st on st.day = d.day
    left join main_sleep ms on ms.day = d.day
    left join sleep_hr hr on hr.day = d.day
    where d.day between aw.d0 and aw.d1
    on conflict (participant_id, day) do update set
      wear_minutes = excluded.wear_minutes, steps = excluded.steps,
      main_sleep_type = excluded.main_sleep_type, main_sleep_start = excluded.main_sleep_start,
      main_sleep_end = excluded.main_sleep_end, sleep_minutes = excluded.sleep_minutes,
      sleep_hr_minutes = excluded.sleep_hr_minutes, computed_at = now();

    get diagnostics wrote = row_count;
    written := written + wrote;
  end loop;

  return written;
end
$$;

-- Those reads ask for one participant's minutes of one metric over a time range. Elsewhere
-- data_1m's primary key is that index; the continuous aggregate has only TimescaleDB's default
-- (participant_id, bucket) and (data_type, bucket) indexes, which would read every metric of
-- the participant (or every participant's minutes of the metric) to find them.
do $$
begin
  if wearhouse_backend() = 'timescaledb' then
    create index if not exists data_1m_series on data_1m (participant_id, data_type, bucket);
  end if;
end
$$;
