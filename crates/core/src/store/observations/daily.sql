-- One value per local day of the participant: the days are [local midnight, next local
-- midnight) in the participant's IANA zone, so a day of a clock change lasts 23 or 25 hours.
-- $1 participant, $2 IANA zone, $3 first day (included), $4 last day (excluded), $5 metric.
-- $6 'sum' (amounts: steps) or 'avg' (one value per day: resting heart rate).
with days as (
  select d.day,
         d.day::timestamp at time zone $2 as day_start,
         (d.day + 1)::timestamp at time zone $2 as day_end
  from (select $3::date + i as day from generate_series(0, $4::date - $3::date - 1) as i) d
)
select days.day, days.day_start, days.day_end, case when $6 = 'sum' then sum(r.value_numeric)
                                             else avg(r.value_numeric) end as value
from days
join raw_data r
  on r.participant_id = $1 and r.data_type = $5
 and r.timestamp >= days.day_start and r.timestamp < days.day_end
where r.value_numeric is not null
group by days.day, days.day_start, days.day_end
order by days.day
