-- Adherence: per participant and local day (participants.timezone) how long the device was
-- worn, steps, the main sleep and its heart-rate coverage; per participant a summary with the
-- inactivity, low-wear and poor-sleep-data flags. Read by Grafana and by GET /participants.
--
-- Why a table kept current rather than a plain view: the summary needs 30 days of minute-level
-- heart rate per participant; at 1,000 participants that is ~30 million 1-minute rows, seconds
-- of work on every dashboard refresh. A day row costs one recomputation when a load touches the
-- day, and the views below then read ~30 small rows per participant through the primary key.
-- `refresh_adherence(from, to)` recomputes the local days a changed span touches; the loader
-- calls it after each write (wearhouse_core::store::adherence::refresh), and on TimescaleDB a
-- background job also refreshes the last two days every hour.
--
-- Definitions (also in the README, "Analysts and adherence"):
-- - wear minutes: distinct minutes with heart-rate data (data_1m rows with a count), by the
--   local day of the minute;
-- - steps: the day's sum of steps (data_1m); null when no step was recorded;
-- - a sleep session is a run of sleep_stage samples with no gap longer than
--   sleep_session_gap_minutes; its sleep minutes are the distinct minutes labelled light, deep,
--   rem (stages) or asleep, restless (classic); wake/awake minutes are not sleep;
-- - the main sleep of a local day is the session with the most sleep minutes that ends on that
--   day (a night from 23:00 to 07:00 counts for the morning it ends), ties to the later end;
--   its type is 'stages' when any sample is labelled deep, light or rem, else 'classic';
-- - heart-rate coverage during sleep: the share of the main sleep's sleep minutes that have
--   heart-rate data;
-- - "last 7 days" and "last 30 days" are the complete local days before today, so a day still
--   in progress never counts against anyone.

create table adherence_settings (
  -- One row: the check keeps it single.
  singleton                    boolean primary key default true check (singleton),
  -- A day is valid when the device was worn at least this many minutes.
  valid_day_min_wear_minutes   integer not null default 600
                               check (valid_day_min_wear_minutes between 0 and 1440),
  -- Inactivity: no data at all for at least this many local days.
  inactivity_days              integer not null default 3 check (inactivity_days > 0),
  -- Low wear time: fewer valid days than this among the last 7.
  low_wear_min_valid_days_7d   integer not null default 4
                               check (low_wear_min_valid_days_7d between 0 and 7),
  -- Poor sleep data quality: fewer nights with a main sleep than this among the last 7 ...
  poor_sleep_min_nights_7d     integer not null default 4
                               check (poor_sleep_min_nights_7d between 0 and 7),
  -- ... or heart-rate coverage over those nights' sleep minutes below this share.
  poor_sleep_min_hr_coverage   double precision not null default 0.8
                               check (poor_sleep_min_hr_coverage between 0 and 1),
  -- Sleep-stage samples further apart than this belong to different sessions.
  sleep_session_gap_minutes    integer not null default 30 check (sleep_session_gap_minutes > 0),
  updated_at                   timestamptz not null default now()
);

insert into adherence_settings default values;

create table adherence_days (
  participant_id   text    not null references participants on delete cascade,
  day              date    not null,
  wear_minutes     integer not null,
  steps            double precision,
  main_sleep_type  text    check (main_sleep_type in ('stages', 'classic')),
  main_sleep_start timestamptz,
  main_sleep_end   timestamptz,
  sleep_minutes    integer not null,
  -- Sleep minutes of the main sleep that have heart-rate data.
  sleep_hr_minutes integer not null,
  computed_at      timestamptz not null default now(),
  primary key (participant_id, day)
);

-- For each participant (or one), the local days [d0, d1] that data in [p_from, p_to) can
-- affect, and their bounds in time. d1 is one day later than the span's last local day: heart
-- rate before midnight counts for the sleep that ends the next morning.
create or replace function adherence_windows(
  p_from timestamptz, p_to timestamptz, p_participant text default null)
returns table (participant_id text, timezone text, d0 date, d1 date,
               t0 timestamptz, t1 timestamptz)
language sql stable as $$
  select w.participant_id, w.timezone, w.d0, w.d1,
         w.d0::timestamp at time zone w.timezone,
         (w.d1 + 1)::timestamp at time zone w.timezone
  from (
    select p.participant_id, p.timezone,
           (p_from at time zone p.timezone)::date as d0,
           ((p_to - interval '1 microsecond') at time zone p.timezone)::date + 1 as d1
    from participants p
    where (p_participant is null or p.participant_id = p_participant) and p_to > p_from
  ) w
$$;

-- Recomputes the adherence days that data in [p_from, p_to) touches, for every participant or
-- one, and returns how many day rows it wrote. Idempotent; safe to call concurrently.
create or replace function refresh_adherence(
  p_from timestamptz, p_to timestamptz, p_participant text default null)
returns integer
language plpgsql as $$
declare
  gap interval;
  written integer;
begin
  select make_interval(mins => s.sleep_session_gap_minutes) into gap from adherence_settings s;
  gap := coalesce(gap, interval '30 minutes');

  -- Refreshes of the same participant take turns (in a fixed order, so they cannot deadlock).
  perform count(pg_advisory_xact_lock(hashtextextended('adherence:' || w.participant_id, 0)))
  from (select a.participant_id from adherence_windows(p_from, p_to, p_participant) a
        order by 1) w;

  delete from adherence_days a
  using adherence_windows(p_from, p_to, p_participant) w
  where a.participant_id = w.participant_id and a.day between w.d0 and w.d1;

  with win as (
    select * from adherence_windows(p_from, p_to, p_participant)
  ), wear as (
    select w.participant_id, (m.bucket at time zone w.timezone)::date as day,
           count(*)::integer as wear_minutes
    from win w
    join data_1m m on m.participant_id = w.participant_id and m.data_type = 'heart_rate'
                  and m.bucket >= w.t0 and m.bucket < w.t1 and m.count_value_numeric > 0
    group by 1, 2
  ), steps as (
    select w.participant_id, (m.bucket at time zone w.timezone)::date as day,
           sum(m.sum_value_numeric) as steps
    from win w
    join data_1m m on m.participant_id = w.participant_id and m.data_type = 'steps'
                  and m.bucket >= w.t0 and m.bucket < w.t1 and m.count_value_numeric > 0
    group by 1, 2
  ), stages as (
    -- Sessions ending in the window may start the evening before; 36 hours either side
    -- sees every session that ends in it whole.
    select w.participant_id, w.timezone, w.d0, w.d1, r.timestamp, r.value_text as label,
           r.timestamp - lag(r.timestamp) over (partition by w.participant_id
                                                order by r.timestamp) as since_previous
    from win w
    join raw_data r on r.participant_id = w.participant_id and r.data_type = 'sleep_stage'
                   and r.timestamp >= w.t0 - interval '36 hours'
                   and r.timestamp < w.t1 + interval '36 hours'
  ), numbered as (
    select s.*,
           sum(case when s.since_previous is null or s.since_previous > gap then 1 else 0 end)
             over (partition by s.participant_id order by s.timestamp) as session
    from stages s
  ), sessions as (
    select n.participant_id, n.timezone, n.d0, n.d1, n.session,
           min(n.timestamp) as started,
           -- A sample stands for the 30 seconds it starts.
           max(n.timestamp) + interval '30 seconds' as ended,
           count(distinct date_bin('1 minute', n.timestamp, timestamptz '2000-01-01 00:00:00+00'))
             filter (where n.label in ('light', 'deep', 'rem', 'asleep', 'restless'))::integer
             as sleep_minutes,
           case when bool_or(n.label in ('light', 'deep', 'rem')) then 'stages'
                else 'classic' end as sleep_type
    from numbered n
    group by 1, 2, 3, 4, 5
  ), main_sleep as (
    select distinct on (s.participant_id, (s.ended at time zone s.timezone)::date)
           s.participant_id, s.session, (s.ended at time zone s.timezone)::date as day,
           s.started, s.ended, s.sleep_minutes, s.sleep_type
    from sessions s
    where s.sleep_minutes > 0 and (s.ended at time zone s.timezone)::date between s.d0 and s.d1
    order by s.participant_id, (s.ended at time zone s.timezone)::date,
             s.sleep_minutes desc, s.ended desc
  ), sleep_hr as (
    select ms.participant_id, ms.day, count(*)::integer as covered
    from main_sleep ms
    join lateral (
      select distinct date_bin('1 minute', n.timestamp, timestamptz '2000-01-01 00:00:00+00')
               as minute
      from numbered n
      where n.participant_id = ms.participant_id and n.session = ms.session
        and n.label in ('light', 'deep', 'rem', 'asleep', 'restless')
    ) sm on true
    join data_1m m on m.participant_id = ms.participant_id and m.data_type = 'heart_rate'
                  and m.bucket = sm.minute and m.count_value_numeric > 0
    group by 1, 2
  ), days as (
    select participant_id, day from wear
    union select participant_id, day from steps
    union select participant_id, day from main_sleep
  )
  insert into adherence_days as a (participant_id, day, wear_minutes, steps, main_sleep_type,
                                   main_sleep_start, main_sleep_end, sleep_minutes,
                                   sleep_hr_minutes)
  select d.participant_id, d.day, coalesce(wr.wear_minutes, 0), st.steps, ms.sleep_type,
         ms.started, ms.ended, coalesce(ms.sleep_minutes, 0), coalesce(hr.covered, 0)
  from days d
  join win w on w.participant_id = d.participant_id and d.day between w.d0 and w.d1
  left join wear wr on wr.participant_id = d.participant_id and wr.day = d.day
  left join steps st on st.participant_id = d.participant_id and st.day = d.day
  left join main_sleep ms on ms.participant_id = d.participant_id and ms.day = d.day
  left join sleep_hr hr on hr.participant_id = d.participant_id and hr.day = d.day
  on conflict (participant_id, day) do update set
    wear_minutes = excluded.wear_minutes, steps = excluded.steps,
    main_sleep_type = excluded.main_sleep_type, main_sleep_start = excluded.main_sleep_start,
    main_sleep_end = excluded.main_sleep_end, sleep_minutes = excluded.sleep_minutes,
    sleep_hr_minutes = excluded.sleep_hr_minutes, computed_at = now();

  get diagnostics written = row_count;
  return written;
end
$$;

-- One row per participant and local day with data.
create view participant_adherence_daily as
select a.participant_id,
       a.day,
       -- Local midnight starting the day, for time axes.
       a.day::timestamp at time zone p.timezone as day_start,
       a.wear_minutes,
       a.wear_minutes >= s.valid_day_min_wear_minutes as valid_day,
       a.steps,
       a.main_sleep_type is not null as main_sleep_recorded,
       a.main_sleep_type,
       a.main_sleep_start,
       a.main_sleep_end,
       a.sleep_minutes,
       a.sleep_hr_minutes::double precision / nullif(a.sleep_minutes, 0) as sleep_hr_coverage,
       p.last_device_sync
from adherence_days a
join participants p using (participant_id)
cross join adherence_settings s;

-- One row per participant: the windows, days since last data and the three flags. Flags are
-- raised for active participants only (a withdrawn participant is not "inactive").
create view participant_adherence as
select p.participant_id,
       p.timezone,
       p.status,
       w.today as local_today,
       coalesce(win.valid_days_7d, 0) as valid_days_7d,
       coalesce(win.valid_days_30d, 0) as valid_days_30d,
       coalesce(win.nights_with_main_sleep_7d, 0) as nights_with_main_sleep_7d,
       win.sleep_hr_coverage_7d,
       last.day as last_data_day,
       w.today - last.day as days_since_last_data,
       p.last_device_sync,
       p.status = 'active'
         and coalesce(w.today - last.day, w.today - (p.enrolled_at at time zone p.timezone)::date)
             >= s.inactivity_days as flag_inactivity,
       p.status = 'active'
         and coalesce(win.valid_days_7d, 0) < s.low_wear_min_valid_days_7d as flag_low_wear,
       p.status = 'active'
         and (coalesce(win.nights_with_main_sleep_7d, 0) < s.poor_sleep_min_nights_7d
              or coalesce(win.sleep_hr_coverage_7d, 0) < s.poor_sleep_min_hr_coverage)
         as flag_poor_sleep
from participants p
cross join adherence_settings s
cross join lateral (select (now() at time zone p.timezone)::date as today) w
left join lateral (
  select count(*) filter (where a.wear_minutes >= s.valid_day_min_wear_minutes
                            and a.day >= w.today - 7)::integer as valid_days_7d,
         count(*) filter (where a.wear_minutes >= s.valid_day_min_wear_minutes)::integer
           as valid_days_30d,
         count(*) filter (where a.main_sleep_type is not null and a.day >= w.today - 7)::integer
           as nights_with_main_sleep_7d,
         sum(a.sleep_hr_minutes) filter (where a.day >= w.today - 7)::double precision
           / nullif(sum(a.sleep_minutes) filter (where a.day >= w.today - 7), 0)
           as sleep_hr_coverage_7d
  from adherence_days a
  where a.participant_id = p.participant_id and a.day >= w.today - 30 and a.day < w.today
) win on true
left join lateral (
  select max(a.day) as day from adherence_days a where a.participant_id = p.participant_id
) last on true;

-- TimescaleDB runs a background job; elsewhere the loader's refresh keeps the days current.
create or replace procedure adherence_refresh_job(job_id integer, config jsonb)
language plpgsql as $$
begin
  perform refresh_adherence(now() - interval '2 days', now());
end
$$;

do $$
begin
  if wearhouse_backend() = 'timescaledb' then
    perform add_job('adherence_refresh_job', interval '1 hour');
  end if;
end
$$;

-- Storage per table for the operations dashboard: bytes before and after TimescaleDB
-- compression for hypertables, and plain table sizes elsewhere (before = after), so one query
-- works on every backend. TimescaleDB's functions are reached through dynamic SQL only when
-- the extension is there.
create or replace function wearhouse_storage_stats()
returns table (relation text, before_bytes bigint, after_bytes bigint, compressed boolean)
language plpgsql stable as $$
begin
  if wearhouse_backend() = 'timescaledb' then
    -- The current size includes compressed chunks at their compressed size; adding back
    -- what compression saved gives the size before it.
    return query execute $sql$
      select h.hypertable_name::text,
             (t.size - coalesce(c.after_compression_total_bytes, 0)
                     + coalesce(c.before_compression_total_bytes, 0))::bigint,
             t.size::bigint,
             coalesce(c.number_compressed_chunks, 0) > 0
      from timescaledb_information.hypertables h
      cross join lateral (
        select hypertable_size(format('%I.%I', h.hypertable_schema,
                                      h.hypertable_name)::regclass) as size) t
      left join lateral hypertable_compression_stats(
        format('%I.%I', h.hypertable_schema, h.hypertable_name)::regclass) c on true
      where h.hypertable_schema = current_schema()
    $sql$;
  else
    return query
      select c.relname::text, pg_total_relation_size(c.oid), pg_total_relation_size(c.oid), false
      from pg_class c
      where c.relnamespace = current_schema()::regnamespace and c.relkind = 'r'
        and c.relname in ('raw_data', 'data_1m', 'data_1h', 'data_1d', 'imputed_data');
  end if;
end
$$;
