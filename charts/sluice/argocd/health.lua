-- Argo CD health of a sluice.dev Rollout, from the kstatus conditions
-- (Ready, Reconciling, Stalled) the controller sets.
local hs = {}
hs.status = "Progressing"
hs.message = "Waiting for Sluice to reconcile the Rollout"
if obj.status == nil then
  return hs
end

local function condition(kind)
  if obj.status.conditions == nil then
    return nil
  end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local stalled = condition("Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = stalled.message or stalled.reason or "Rollout stalled"
  return hs
end

local generation = obj.metadata.generation or 0
local observed = obj.status.observedGeneration or 0
if observed < generation then
  hs.message = "Waiting for Sluice to observe generation " .. generation
  return hs
end

local suspended = condition("Suspended")
if suspended ~= nil and suspended.status == "True" then
  hs.status = "Suspended"
  hs.message = suspended.message or "Rollout suspended"
  return hs
end

local ready = condition("Ready")
local phase = obj.status.phase or ""
if ready ~= nil and ready.status == "True" and (phase == "Succeeded" or phase == "Initialized") then
  hs.status = "Healthy"
  hs.message = ready.message or phase
  return hs
end

local reconciling = condition("Reconciling")
if reconciling ~= nil and reconciling.status == "True" then
  hs.message = reconciling.message or reconciling.reason or phase
  return hs
end
if ready ~= nil and ready.message ~= nil and ready.message ~= "" then
  hs.message = ready.message
end
return hs
