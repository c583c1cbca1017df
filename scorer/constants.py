"""Constants of NAVSIM's PDM score, written the way nuPlan/NAVSIM compute them.

Vehicle sizes are derived exactly as nuPlan's `get_pacifica_parameters()` derives them (e.g. the length
is `4.049 + 1.127`, not the literal 5.176), so every box corner is the same float as in NAVSIM.
"""

from __future__ import annotations

from enum import IntEnum

# ------------------------------------------------------------------------------ ego (Pacifica) ---
EGO_WIDTH = 1.1485 * 2.0  # [m]
EGO_FRONT_LENGTH = 4.049  # [m] rear axle -> front bumper
EGO_REAR_LENGTH = 1.127  # [m] rear axle -> rear bumper
EGO_LENGTH = EGO_FRONT_LENGTH + EGO_REAR_LENGTH  # [m]
EGO_HALF_LENGTH = EGO_LENGTH / 2.0
EGO_HALF_WIDTH = EGO_WIDTH / 2.0
EGO_REAR_AXLE_TO_CENTER = EGO_HALF_LENGTH - EGO_REAR_LENGTH  # [m]
WHEEL_BASE = 3.089  # [m]

# ------------------------------------------------------------------------------------ sampling ---
DT = 0.1  # [s] simulation / scoring step
NUM_POSES = 40  # 4 s at 10 Hz -> 41 states
NUM_STATES = NUM_POSES + 1
PLAN_INTERVAL = 0.5  # [s] between model poses

# ----------------------------------------------------------------------------- tracker (LQR) ---
Q_LON = 10.0
R_LON = 1.0
Q_LAT = (1.0, 10.0, 0.0)  # lateral error, heading error, steering angle
R_LAT = 1.0
TRACKING_HORIZON = 10  # steps
JERK_PENALTY = 1e-4
CURVATURE_RATE_PENALTY = 1e-2
INITIAL_CURVATURE_PENALTY = 1e-10
STOPPING_GAIN = 0.5
STOPPING_VELOCITY = 0.2  # [m/s]

# ----------------------------------------------------------------------- kinematic bicycle ---
MAX_STEERING_ANGLE = 3.141592653589793 / 3  # [rad]
ACCEL_TIME_CONSTANT = 0.2  # [s]
STEERING_TIME_CONSTANT = 0.05  # [s]

# -------------------------------------------------------------------------------- PDM-Closed ---
SPEED_LIMIT_FRACTIONS = (0.2, 0.4, 0.6, 0.8, 1.0)
FALLBACK_TARGET_VELOCITY = 15.0  # [m/s] when the starting lane has no speed limit
LATERAL_OFFSETS = (-1.0, 1.0)  # [m] extra paths beside the centerline (index 1, 2)
IDM_MIN_GAP = 1.0  # [m]
IDM_HEADWAY = 1.5  # [s]
IDM_ACCEL_MAX = 1.5  # [m/s²]
IDM_DECEL_MAX = 3.0  # [m/s²]
IDM_EXPONENT = 10
MAP_RADIUS = 100.0  # [m]
PLANNER_HORIZON_POSES = 50  # PDM-Closed plans 5 s; only the first 4 s are scored
MAX_DYNAMIC_OBJECTS = {"vehicle": 50, "pedestrian": 25, "bicycle": 10}
MAX_STATIC_OBJECTS = 50

# ----------------------------------------------------------------------------------- metrics ---
AGENT_TYPES = frozenset({"vehicle", "pedestrian", "bicycle"})
EGO_STOPPED_SPEED = 5e-2  # [m/s] collision classification
TRACK_STOPPED_SPEED = 5e-3  # [m/s] nuPlan's is_track_stopped
TTC_STOPPED_SPEED = 5e-3  # [m/s]
TTC_FUTURE_STEPS = (0, 3, 6, 9)  # projections at 0, 0.3, 0.6, 0.9 s
AHEAD_ANGLE_DEG = 20.0
BEHIND_ANGLE_DEG = 150.0
PROGRESS_THRESHOLD = 5.0  # [m]
DDC_HORIZON_STEPS = 10  # 1 s
DDC_COMPLIANT = 2.0  # [m]
DDC_VIOLATION = 6.0  # [m]
LK_DEVIATION = 0.5  # [m]
LK_STEPS = 20  # 2 s

V1_WEIGHTS = (5.0, 5.0, 2.0)  # EP, TTC, C (DDC has weight 0)
V2_WEIGHTS = (5.0, 5.0, 2.0, 2.0, 2.0)  # EP, TTC, LK, HC, EC


class S(IntEnum):
    """Columns of a state array, as NAVSIM's StateIndex (rear-axle frame values)."""

    X = 0
    Y = 1
    HEADING = 2
    VX = 3
    VY = 4
    AX = 5
    AY = 6
    STEERING = 7
    STEERING_RATE = 8
    YAW_RATE = 9
    YAW_ACCEL = 10


STATE_SIZE = 11
